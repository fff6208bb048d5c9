"""Launch the whmr node (and optionally RViz): ``ros2 launch whmr_ros whmr.launch.py [rviz:=true]``."""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("whmr_ros")
    args = [
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "whmr.params.yaml"),
            description="YAML file with the node's parameters",
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="namespace of the node and its topics"
        ),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag playback)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with rviz/whmr.rviz"),
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input image topic"),
        DeclareLaunchArgument(
            "camera_info", default_value="/camera/camera_info", description="input CameraInfo topic"
        ),
        DeclareLaunchArgument("imu", default_value="/imu/data", description="input IMU topic"),
        DeclareLaunchArgument(
            "detections", default_value="detections", description="input vision_msgs/Detection2DArray topic"
        ),
    ]
    node = Node(
        package="whmr_ros",
        executable="whmr_node",
        name="whmr",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {"use_sim_time": LaunchConfiguration("use_sim_time")},
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
            ("imu", LaunchConfiguration("imu")),
            ("detections", LaunchConfiguration("detections")),
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", os.path.join(share, "rviz", "whmr.rviz")],
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*args, node, rviz])

"""The colcon-built package: install layout, imports from the installed tree, and `ros2 launch` of the node
as a separate process (default params file, launch arguments), answering images over DDS.

Needs a sourced ROS 2 with colcon (skipped with the reason otherwise). The launched node runs the shipped
checkpoint, so these tests are marked slow.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

ROOT_FILES = ("package.xml", "launch/whmr.launch.py", "config/whmr.params.yaml", "rviz/whmr.rviz")


def test_install_layout_and_imports_from_the_installed_tree(whmr_ws):
    inst = whmr_ws.install
    for f in ROOT_FILES:
        assert (inst / "share" / "whmr_ros" / f).is_file(), f
    node_exe = inst / "lib" / "whmr_ros" / "whmr_node"
    assert node_exe.is_file() and os.access(node_exe, os.X_OK)
    site = whmr_ws.site_packages
    # rosidl_python#141 layout: the generated package (its __init__ and msg/) with the hand-written
    # modules copied beside it, and whmr_core next to it.
    assert (site / "whmr_ros" / "msg" / "__init__.py").is_file()
    for module in ("node.py", "host.py", "params.py", "scheduler.py", "outputs.py"):
        assert (site / "whmr_ros" / module).is_file(), module
    assert (site / "whmr_core" / "__init__.py").is_file()
    assert (site / "whmr_core" / "assets" / "checkpoints").is_dir()  # the shipped checkpoint travels
    probe = (
        "import whmr_ros.node, whmr_core; from whmr_ros.msg import BodyMeshArray, BodyModelTopology;"
        "print(whmr_ros.node.__file__); print(whmr_core.__file__);"
        "print(BodyMeshArray().gravity_source == '')"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=whmr_ws.env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=whmr_ws.root,  # not the repository: `-c` puts the working directory first on sys.path
    )
    assert out.returncode == 0, out.stderr
    node_file, core_file, ok = out.stdout.split()
    assert node_file.startswith(str(site)) and core_file.startswith(str(site)) and ok == "True"


@contextlib.contextmanager
def _launched(ws, *args: str):
    """`ros2 launch whmr_ros whmr.launch.py ARGS` in its own process group; stopped with SIGINT after."""
    proc = subprocess.Popen(
        ["ros2", "launch", "whmr_ros", "whmr.launch.py", *args],
        env=dict(ws.env, ROS_DOMAIN_ID=os.environ["ROS_DOMAIN_ID"], PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=ws.root,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _log(proc) -> str:
    if proc.poll() is None:
        return "(still running)"
    return proc.stdout.read()[-3000:]


@contextlib.contextmanager
def _probe():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("launch_probe", context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        yield node, ex
        ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def _call(node, ex, srv_type, name, request, timeout_s):
    from ros_helpers import spin_until

    client = node.create_client(srv_type, name)
    try:
        if not spin_until(ex, client.service_is_ready, timeout_s):
            return None
        future = client.call_async(request)
        return future.result() if spin_until(ex, future.done, 10.0) else None
    finally:
        node.destroy_client(client)


def _wait_active(node, ex, fqn: str, proc, timeout_s: float = 90.0) -> None:
    import time

    from lifecycle_msgs.srv import GetState

    deadline = time.monotonic() + timeout_s
    label = None
    while time.monotonic() < deadline and proc.poll() is None:
        res = _call(node, ex, GetState, f"{fqn}/get_state", GetState.Request(), 5.0)
        label = res.current_state.label if res else None
        if label == "active":
            return
        ex.spin_once(timeout_sec=0.2)
    raise AssertionError(f"{fqn} not active (last state {label}); launch output:\n{_log(proc)}")


def _params(node, ex, fqn: str, names: list[str]) -> list:
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    res = _call(node, ex, GetParameters, f"{fqn}/get_parameters", GetParameters.Request(names=names), 10.0)
    assert res is not None
    return [parameter_value_to_python(v) for v in res.values]


@pytest.mark.slow
def test_launch_with_the_default_params_file_reaches_active_and_answers_images(whmr_ws, whmr_msgs):
    from rclpy.qos import qos_profile_sensor_data
    from ros_helpers import spin_until
    from sensor_msgs.msg import Image, Imu
    from whmr_ros.msg import BodyMeshArray

    from whmr_ros.conversions import numpy_to_image
    from whmr_ros.message_kit import RclpyKit

    args = ("namespace:=robot", "image:=/cam/image", "imu:=/cam/imu")
    with _launched(whmr_ws, *args) as proc, _probe() as (node, ex):
        _wait_active(node, ex, "/robot/whmr", proc)
        # The remapped inputs and the namespaced outputs exist in the graph.
        assert spin_until(ex, lambda: node.count_subscribers("/cam/image") == 1, 10.0)
        assert node.count_subscribers("/cam/imu") == 1
        assert node.count_publishers("/robot/whmr/bodies") == 1
        assert _params(node, ex, "/robot/whmr", ["use_sim_time", "marker_rate_hz"]) == [False, 5.0]
        bodies: list = []
        node.create_subscription(BodyMeshArray, "/robot/whmr/bodies", bodies.append, 10)
        pub = node.create_publisher(Image, "/cam/image", qos_profile_sensor_data)
        node.create_publisher(Imu, "/cam/imu", qos_profile_sensor_data)
        assert spin_until(ex, lambda: pub.get_subscription_count() == 1, 10.0)
        kit = RclpyKit()
        stamp = 1_700_000_000_123_000_000
        rgb = np.full((120, 160, 3), 120, np.uint8)
        msg = numpy_to_image(rgb, "rgb8", stamp, "cam_optical", kit.types, data_factory=kit.uint8s)
        got = lambda: any(m.header.stamp.nanosec == 123_000_000 for m in bodies)  # noqa: E731
        for _ in range(20):  # the first image may come before the subscription has matched
            pub.publish(msg)
            if spin_until(ex, got, 3.0):
                break
        assert got(), f"no ~/bodies for the image; launch output:\n{_log(proc)}"
        assert bodies[-1].header.frame_id == "cam_optical_gravity"


@pytest.mark.slow
def test_launch_arguments_params_file_and_use_sim_time_take_effect(whmr_ws, whmr_msgs, tmp_path):
    import yaml

    params = yaml.safe_load((whmr_ws.install / "share/whmr_ros/config/whmr.params.yaml").read_text())
    params["whmr"]["ros__parameters"]["marker_rate_hz"] = 2.5
    params["whmr"]["ros__parameters"]["host"]["camera_from_imu"] = [0.5, -0.5, 0.5, 0.5]
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(params))
    with _launched(whmr_ws, f"params_file:={f}", "use_sim_time:=true") as proc, _probe() as (node, ex):
        _wait_active(node, ex, "/whmr", proc)
        names = ["use_sim_time", "marker_rate_hz", "host.camera_from_imu"]
        use_sim_time, rate, cam_from_imu = _params(node, ex, "/whmr", names)
        assert use_sim_time is True and rate == 2.5 and list(cam_from_imu) == [0.5, -0.5, 0.5, 0.5]

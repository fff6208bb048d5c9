"""whmr_ros: the thin ROS 2 layer of whmr (message conversion, rclpy node, bag runner).

Nothing here imports rclpy at module import time: ROS-only code imports it lazily so that the
conversions and the bag runner work on machines without ROS.
"""

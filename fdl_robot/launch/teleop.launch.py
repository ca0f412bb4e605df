"""teleop_node (+ state_publisher_node) on a real arm (same nodes as `fdl-robot run --graph teleop`).

    ros2 launch ur_robot_driver ur_control.launch.py ur_type:=ur5e robot_ip:=<ip>   # the robot side
    ros2 run joy joy_node                                                           # a gamepad
    ros2 launch fdl_robot teleop.launch.py profile:=ur5e
"""
from fdl_robot.ros.launch_description import generate


def generate_launch_description():
    return generate("teleop")

"""The MuJoCo cell (sim_node) driven by teleop_node (same nodes as `fdl-robot run --graph sim_teleop`).

    ros2 launch fdl_robot sim_teleop.launch.py
    ros2 run joy joy_node                              # a gamepad: hold LB and move the sticks
    ros2 run teleop_twist_keyboard teleop_twist_keyboard   # or TCP velocities on cmd_vel
"""
from fdl_robot.ros.launch_description import generate


def generate_launch_description():
    return generate("sim_teleop")

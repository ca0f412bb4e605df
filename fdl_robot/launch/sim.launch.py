"""The MuJoCo cell (sim_node) + perception + policy (same nodes as `fdl-robot run --graph sim`).

    ros2 launch fdl_robot sim.launch.py config:=/path/to/my.yaml
"""
from fdl_robot.ros.launch_description import generate


def generate_launch_description():
    return generate("sim")

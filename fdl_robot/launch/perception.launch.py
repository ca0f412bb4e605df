"""Perception + policy fed from elsewhere, e.g. a bag (same nodes as `fdl-robot run --graph perception`).

    ros2 launch fdl_robot perception.launch.py use_sim_time:=true
    ros2 bag play /path/to/bag --clock          # the nodes run on the bag's time
"""
from fdl_robot.ros.launch_description import generate


def generate_launch_description():
    return generate("perception")

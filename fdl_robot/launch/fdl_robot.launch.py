"""Camera + perception + policy on a real robot (same nodes as `fdl-robot run --graph robot`).

    ros2 launch fdl_robot fdl_robot.launch.py namespace:=arm1 camera_source:=realsense \
        config:=/path/to/my.yaml model_path:=/path/to/best.pt
"""
from fdl_robot.ros.launch_description import generate


def generate_launch_description():
    return generate("robot")

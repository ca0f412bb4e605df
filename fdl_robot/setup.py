"""ament_python package fdl_robot (see package.xml).

Console scripts double as ROS executables (`ros2 run fdl_robot <name>`); data files put
package.xml, launch files and config where ament_index looks for them.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "fdl_robot"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["models/*", "models/**/*", "sim/assets/*", "ros/*.xml", "perception/*.yaml",
                             "description/*.urdf"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/profiles", glob("config/profiles/*.yaml")),
        (f"share/{PACKAGE}/config/cameras", glob("config/cameras/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="fdl_robot maintainers",
    maintainer_email="maintainers@fdl-robot.org",
    description="ROS 2 perception-to-control stack: detection, 3D lifting, tracking, ACT.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "fdl-robot = fdl_robot.ros.runner:main",
            "fdl-robot-pipeline-demo = fdl_robot.pipeline_demo:main",
            "fdl-robot-bag = fdl_robot.bags.cli:main",
            "fdl-robot-record-demos = fdl_robot.bags.demos:main",
            "fdl-robot-bags-to-dataset = fdl_robot.datasets.bags_to_dataset:main",
            "fdl_sim = fdl_robot.sim.cli:main",
            "fdl-robot-train-act = fdl_robot.policy.act.train:main",
            "fdl-robot-eval-act = fdl_robot.eval.sim_act:main",
            "fdl-robot-train-detector = fdl_robot.perception.train_detector:main",
            "fdl-robot-eval-detector = fdl_robot.eval.detector:main",
            "fdl-robot-closed-loop = fdl_robot.eval.closed_loop:main",
            "fdl-robot-calibrate = fdl_robot.calibrate:main",
            "camera_node = fdl_robot.ros.camera_node:main",
            "detector_node = fdl_robot.ros.detector_node:main",
            "localizer_node = fdl_robot.ros.localizer_node:main",
            "tracker_node = fdl_robot.ros.tracker_node:main",
            "policy_node = fdl_robot.ros.policy_node:main",
            "teleop_node = fdl_robot.ros.teleop_node:main",
            "sim_node = fdl_robot.ros.sim_node:main",
            "state_publisher_node = fdl_robot.ros.state_publisher_node:main",
        ],
    },
)

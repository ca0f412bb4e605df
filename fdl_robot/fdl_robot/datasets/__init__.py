"""Demonstrations as datasets: bags recorded through the ROS graph -> training data.

* :mod:`~fdl_robot.datasets.demo_bags` -- what a demonstration bag holds (topics, the episode
  markers) and the dataset's features and rate, stated once;
* :mod:`~fdl_robot.datasets.bags_to_dataset` -- ``fdl-robot-bags-to-dataset``: bags -> arrays
  on the control rate -> our ACT HDF5 layout or a LeRobotDataset v3.0;
* :mod:`~fdl_robot.datasets.lerobot_writer` -- runs in the separate LeRobot venv
  (``.venv-lerobot``) and imports only numpy and lerobot.

Recording is :mod:`fdl_robot.bags.demos` (``fdl-robot-record-demos``). Nothing here is imported
by this package's ``__init__``: the LeRobot venv imports ``fdl_robot.datasets.lerobot_writer``
without the main venv's packages.
"""

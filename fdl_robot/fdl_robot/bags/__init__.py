"""Record and replay rosbag2 bags without rosbag2: rclpy for the graph, ``rosbags`` for files.

* :mod:`~fdl_robot.bags.typestore` -- message definitions (pinned ROS 2 distribution plus
  ``fdl_robot_interfaces``) embedded in the bags;
* :mod:`~fdl_robot.bags.recorder` -- :class:`BagRecorder`, raw CDR from rclpy subscriptions
  into mcap (default) or sqlite3 rosbag2 bags, written out every ``flush_period_s``;
* :mod:`~fdl_robot.bags.cdr` -- :func:`serialize`, an rclpy message's CDR bytes as a
  subscriber receives them (for writing bags; rclpy's ``serialize_message`` can add bytes);
* :mod:`~fdl_robot.bags.recovery` -- :func:`reindex`, metadata and mcap index rebuilt for a
  recording whose recorder was killed;
* :mod:`~fdl_robot.bags.player` -- :class:`BagPlayer`, recorded timing (rate factor or as
  fast as possible, or message by message) with optional ``/clock``;
* :mod:`~fdl_robot.bags.reader` -- bags as rclpy messages; summaries;
* :mod:`~fdl_robot.bags.replay` -- a recorded camera stream frame by frame through detector,
  localizer and tracker, scored against the ground truth in the bag (regression tests);
* :mod:`~fdl_robot.bags.cli` -- ``fdl-robot-bag record | play | info | reindex``.

The bags are standard rosbag2 directories that ``ros2 bag info/play`` reads on a real
install (metadata.yaml, CDR, ``ros2msg`` schemas in the mcap, offered QoS profiles).
"""

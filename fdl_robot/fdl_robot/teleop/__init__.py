"""Teleoperation: operator input (Joy, Twist) -> TCP target -> IK -> the safety layer (no ROS)."""

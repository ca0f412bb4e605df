"""fdl_robot: a ROS 2 perception-to-control stack.

Subpackages:

* ``core``       -- the mathematical core (numpy/scipy only, never imports ROS)
* ``perception`` -- detector backends and the depth-lifting pipeline
* ``policy``     -- the ACT policy (model, training, inference)
* ``sim``        -- MuJoCo pick-and-place cell, scripted expert, datasets
* ``ros``        -- thin rclpy nodes over the packages above
"""

__version__ = "0.1.0"

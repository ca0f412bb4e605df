"""fdl_robot.eval: every evaluation of the stack, one shape, one set of helpers.

An evaluator is an object built from its settings (an :class:`~fdl_robot.eval.base.EvalConfig`
for the seeds and the episode limit, plus its own) whose ``run(subject)`` evaluates one
subject -- a policy, the scripted expert, a detector, the perception graph -- and returns
its metrics (:class:`~fdl_robot.eval.base.Evaluator`). Each evaluator has its own module
and command:

* :mod:`~fdl_robot.eval.sim_expert`  -- the scripted expert in the simulator (``fdl_sim evaluate``);
* :mod:`~fdl_robot.eval.sim_act`     -- a policy (ACT) in the simulator, object positions given
  (``fdl-robot-eval-act``);
* :mod:`~fdl_robot.eval.ros_expert`  -- the scripted expert through ROS topics against sim_node
  (``python -m fdl_robot.eval.ros_expert``);
* :mod:`~fdl_robot.eval.closed_loop` -- pick-and-place from pixels through the whole ROS graph
  (``fdl-robot-closed-loop``);
* :mod:`~fdl_robot.eval.detector`    -- a detector and the depth lifting on held-out simulator
  frames (``fdl-robot-eval-detector``);
* :mod:`~fdl_robot.eval.replay`      -- detector, localizer and tracker on a recorded bag against
  its ground truth (``python -m fdl_robot.bags.replay``).

Shared helpers: :mod:`~fdl_robot.eval.stats` (Wilson interval, success summaries),
:mod:`~fdl_robot.eval.media` (captions, image strips, videos), :mod:`~fdl_robot.eval.matching`
(boxes matched one to one within their class). Submodules are imported on demand, so
importing this package loads neither MuJoCo, ROS nor torch.
"""

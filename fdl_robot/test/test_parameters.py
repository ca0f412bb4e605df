"""Each default lives once: node parameters read the library configs' defaults, and nodes
build those configs from their parameters by keyword."""
from dataclasses import fields

import pytest

from fdl_robot.core.safety import SafetyConfig
from fdl_robot.core.tracking import TrackerConfig
from fdl_robot.perception.detector import DetectorConfig
from fdl_robot.perception.lifting import LiftingConfig
from fdl_robot.perception.sources import CameraConfig
from fdl_robot.policy.inputs import PolicyInputsConfig
from fdl_robot.policy.runner import PolicyConfig
from fdl_robot.ros import parameters

# (node, config): every field of the config is a parameter of the node.
CONFIGS = [("camera_node", CameraConfig), ("detector_node", DetectorConfig),
           ("localizer_node", LiftingConfig), ("tracker_node", TrackerConfig),
           ("policy_node", PolicyConfig), ("policy_node", PolicyInputsConfig),
           ("policy_node", SafetyConfig)]


@pytest.mark.parametrize("node,config", CONFIGS, ids=[c.__name__ for _, c in CONFIGS])
def test_every_config_field_is_a_parameter_with_the_config_default(node, config):
    declared = {p.field: p for p in parameters.NODE_PARAMETERS[node] if p.config is config}
    assert sorted(declared) == sorted(f.name for f in fields(config))
    assert parameters.build_config(node, config, parameters.defaults(node)) == config()


@pytest.mark.parametrize("node,config", CONFIGS, ids=[c.__name__ for _, c in CONFIGS])
def test_build_config_takes_each_value_by_name(node, config):
    """Changing one parameter changes exactly the field of that name (no positional mix-up)."""
    values = parameters.defaults(node)
    for p in parameters.NODE_PARAMETERS[node]:
        if p.config is not config or isinstance(p.default, (bool, str, list)):
            continue
        changed = dict(values, **{p.name: type(p.default)(p.default * 0.5 if p.default else 1)})
        try:
            built = parameters.build_config(node, config, changed)
        except ValueError:               # a value the config refuses (e.g. an integer too small)
            continue
        differ = [f.name for f in fields(config) if getattr(built, f.name) != getattr(config(), f.name)]
        assert differ == [p.field], p.name


def test_parameters_of_no_config_are_not_marked():
    for node, params in parameters.NODE_PARAMETERS.items():
        for p in params:
            assert (p.config is None) == (p.field is None), (node, p.name)


def test_config_rejects_bad_values_with_a_message():
    with pytest.raises(ValueError, match="backend"):
        DetectorConfig(backend="yolo")
    with pytest.raises(ValueError, match="chunk_execution"):
        PolicyConfig(chunk_execution="both")
    with pytest.raises(ValueError, match="7 entries"):
        SafetyConfig(joint_lower_rad=(0.0,) * 6, joint_upper_rad=(1.0,) * 6,
                     max_velocity_rad_s=(1.0,) * 6, max_tracking_error_rad=(1.0,) * 6)
    with pytest.raises(ValueError, match="input_timeout_s"):
        PolicyInputsConfig(input_timeout_s=0.0)

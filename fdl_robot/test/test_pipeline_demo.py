"""The README's main command today: the synthetic pipeline demo runs and is accurate."""
from fdl_robot.pipeline_demo import run


def test_pipeline_demo_localizes_and_tracks_both_cubes(tmp_path, capsys):
    summary = run(frames=4, out=tmp_path / "demo.png")
    assert summary["confirmed_tracks"] == 2
    assert summary["median_error_mm"] < 5.0 and summary["max_error_mm"] < 6.0
    assert (tmp_path / "demo.png").stat().st_size > 1000
    assert "scripted policy (target)" in capsys.readouterr().out

"""The landmark weight schedule (paper Eq. 7 and Table 5)."""
import math

import pytest

from depthnas.schedule import SCHEDULES, landmark_lambda

LAMBDA_MAX = 10.0  # the paper's pick


def curve(schedule, **kw):
    return [landmark_lambda(i / 1000, LAMBDA_MAX, schedule, **kw) for i in range(1001)]


def test_cosine_increasing_reaches_lambda_max_exactly_at_the_end():
    values = curve("cosine-increasing")
    assert values[0] == 0.0
    assert values[-1] == LAMBDA_MAX  # exactly; the authors' code never got there
    assert all(a <= b for a, b in zip(values, values[1:]))
    # a cosine, not a straight line: 0.5 * (1 - cos(pi * t)) * lambda_max
    assert values[250] == pytest.approx(LAMBDA_MAX * (1 - math.cos(math.pi / 4)) / 2)  # 1.464
    assert values[500] == pytest.approx(LAMBDA_MAX / 2)
    # past the end (a resumed run's extra step, rounding): held at lambda_max, not past it
    for schedule in SCHEDULES:
        assert landmark_lambda(1.2, LAMBDA_MAX, schedule) == landmark_lambda(1.0, LAMBDA_MAX, schedule)
        assert landmark_lambda(-0.1, LAMBDA_MAX, schedule) == landmark_lambda(0.0, LAMBDA_MAX, schedule)


def test_cosine_decreasing_starts_at_max_and_decays_to_zero():
    values = curve("cosine-decreasing")
    assert values[0] == pytest.approx(LAMBDA_MAX)
    assert values[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[250] == pytest.approx(LAMBDA_MAX * (1 + math.cos(math.pi / 4)) / 2)  # 8.536


def test_constant_and_step():
    assert set(curve("constant")) == {LAMBDA_MAX}
    step = curve("step")
    assert step[0] == LAMBDA_MAX and step[-1] == pytest.approx(LAMBDA_MAX / 10)
    assert all(a >= b for a, b in zip(step, step[1:]))


def test_step_increasing_mirrors_step_and_takes_no_ramp():
    """Table 5's fifth schedule: the second increasing one, beside the cosine."""
    values = curve("step-increasing", ramp=0.1)  # a ramp is for the other schedules
    assert values[0] == pytest.approx(LAMBDA_MAX / 10) and values[499] == values[0]
    assert values[501] == values[-1] == LAMBDA_MAX
    assert landmark_lambda(0.5, LAMBDA_MAX, "step-increasing") == LAMBDA_MAX  # as "step" turns at 0.5
    assert landmark_lambda(0.5, LAMBDA_MAX, "step") == LAMBDA_MAX / 10
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_warmup_keeps_lambda_at_zero_then_increases():
    values = curve("cosine-increasing", warmup=0.2)
    assert all(v == 0.0 for v in values[:201])
    assert values[-1] == LAMBDA_MAX
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_linear_ramp_for_constant_and_decreasing():
    ramped = curve("constant", ramp=0.1)
    assert ramped[0] == 0.0 and ramped[50] == pytest.approx(LAMBDA_MAX / 2)
    assert ramped[100] == pytest.approx(LAMBDA_MAX) and ramped[-1] == LAMBDA_MAX
    # the decreasing cosine is Eq. 7 itself; the ramp rises to Eq. 7's value at its end
    dec = curve("cosine-decreasing", ramp=0.1)
    eq7_at_ramp_end = LAMBDA_MAX * (1 + math.cos(math.pi * 0.1)) / 2  # 9.755
    assert dec[0] == 0.0 and dec[50] == pytest.approx(eq7_at_ramp_end / 2)
    assert dec[100] == pytest.approx(eq7_at_ramp_end) and max(dec) == dec[100]
    assert dec[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(dec[100:], dec[101:]))
    step = curve("step", ramp=0.1)
    assert step[100] == LAMBDA_MAX and step[549] == LAMBDA_MAX and step[551] == LAMBDA_MAX / 10


def test_a_ramp_after_a_warm_up_spans_its_fraction_of_the_whole_run():
    """ramp, like warmup, is a fraction of all of training (the paper's 10 epochs of
    the run), not of what the warm-up leaves: 0.2 of warm-up and 0.1 of ramp put
    lambda at half way at 0.25 and at lambda_max from 0.30."""
    const = curve("constant", warmup=0.2, ramp=0.1)
    assert const[200] == 0.0 and const[250] == pytest.approx(LAMBDA_MAX / 2)
    assert const[300] == pytest.approx(LAMBDA_MAX) and const[-1] == LAMBDA_MAX
    dec = curve("cosine-decreasing", warmup=0.2, ramp=0.1)
    eq7_at_ramp_end = LAMBDA_MAX * (1 + math.cos(math.pi * 0.1)) / 2
    assert dec[250] == pytest.approx(eq7_at_ramp_end / 2) and dec[300] == pytest.approx(eq7_at_ramp_end)


def test_cosine_decreasing_after_a_warm_up_is_eq_7_as_written():
    """lambda_t = 1[t > t_w] 0.5 (1 + cos(pi (t - t_w) / t_total)) lambda_max: the
    cosine's clock starts at the warm-up's end and is divided by all of training, so a
    warm-up of 10 of 100 epochs leaves 0.245 at the end (it was rescaled to reach 0,
    and 5.0 at epoch 55 where Eq. 7 has 5.78)."""
    values = curve("cosine-decreasing", warmup=0.1)
    assert all(v == 0.0 for v in values[:101]) and values[101] == pytest.approx(LAMBDA_MAX, rel=1e-4)
    for t in (55, 80, 100):
        eq7 = 0.5 * (1 + math.cos(math.pi * (t - 10) / 100)) * LAMBDA_MAX
        assert values[t * 10] == pytest.approx(eq7)
    assert values[550] == pytest.approx(5.7822, abs=1e-4) and values[-1] == pytest.approx(0.2447, abs=1e-4)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown lambda schedule 'linear'"):
        landmark_lambda(0.5, 10, "linear")
    assert len(SCHEDULES) == 5  # Table 5's five


def test_a_ramp_longer_than_the_training_left_is_refused_not_silently_short_of_lambda_max():
    # A constant schedule with this ramp would have stopped at 8.33 of 10.
    with pytest.raises(ValueError, match="shorten the ramp"):
        landmark_lambda(1.0, 10.0, "constant", warmup=0.5, ramp=0.6)
    assert landmark_lambda(1.0, 10.0, "cosine-increasing", warmup=0.5, ramp=0.6) == 10.0  # no ramp


def test_config_refuses_landmark_settings_that_cannot_act():
    from depthnas.config import ConfigError, load
    from depthnas.config_checks import validate
    cfg = load(preset="paper")
    cfg.supernet.epochs = 3  # T * E = 2 * 3 = 6 epochs, the paper's ramp is 10
    validate(cfg)  # the increasing cosine has no ramp
    cfg.landmarks.schedule = "constant"
    with pytest.raises(ConfigError, match=r"warmup_epochs \+ landmarks.ramp_epochs = 10 leave none "
                                          r"of the super-net's 6 epochs"):
        validate(cfg)
    cfg.landmarks.schedule, cfg.landmarks.num = "cosine-increasing", 1
    validate(cfg)  # T = 2: the top-3 of the first iteration join the one landmark
    cfg.search.iterations = 1
    with pytest.raises(ConfigError, match=r"landmarks.num=1: the ranking penalty needs pairs"):
        validate(cfg)


@pytest.mark.parametrize("schedule", ["constant", "cosine-decreasing", "step", "step-increasing"])
def test_lambda_is_zero_at_the_last_moment_of_the_warm_up(schedule):
    """Every schedule, not only the increasing cosine, which is 0 there anyway."""
    assert landmark_lambda(0.25, 2.0, schedule, warmup=0.25) == 0.0
    assert landmark_lambda(0.2500001, 2.0, schedule, warmup=0.25) > 0.0

"""Malformed configurations, one defect each in a copy of the CI config, through the one validation that both
the workflow and ``momentum-ct check`` run: each is rejected with one line naming its key path, before any job
(nothing is written beside the config file)."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from momentum_ct.errors import ConfigError
from momentum_ct.validation import check_file

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
BASE = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
Q, T, D = "k1_quadratic", "k1_toy2d", "k4_digits_full"  # the CI config's experiments


def at(*keys):
    """A mutation setting ``config[k1]...[kn-1][kn] = value``."""
    *path, last = keys

    def set_to(value):
        def mutate(config):
            node = config
            for k in path:
                node = node[k]
            node[last] = value
        return mutate
    return set_to


def drop(*keys):
    *path, last = keys

    def mutate(config):
        node = config
        for k in path:
            node = node[k]
        node.pop(last)
    return mutate


def rename(*keys, to):
    *path, last = keys

    def mutate(config):
        node = config
        for k in path:
            node = node[k]
        node[to] = node.pop(last)
    return mutate


def exp(name, key):
    return at("experiments", name, key)


def both(*mutations):
    def mutate(config):
        for m in mutations:
            m(config)
    return mutate


INF, NAN = float("inf"), float("nan")

# id -> (mutation of the CI config, substring of the one-line error; it starts with the key path)
CASES = {
    # top level
    "unknown_top_key": (rename("series_per_shard", to="serie_per_shard"),
                        "(top level): unknown key(s) 'serie_per_shard'; valid keys:"),
    "series_per_shard_zero": (at("series_per_shard")(0), "series_per_shard: 0 is not allowed"),
    "series_per_shard_string": (at("series_per_shard")("6"), "series_per_shard: '6' is not allowed"),
    "series_per_shard_float": (at("series_per_shard")(1.5), "series_per_shard: 1.5 is not allowed"),
    "missing_experiments": (drop("experiments"), "(top level): 'experiments' is a required property"),
    "no_experiments": (at("experiments")({}), "experiments: {} is not allowed"),
    "experiments_a_list": (at("experiments")([]), "experiments: [] is not allowed"),
    "experiment_name_with_dash": (rename("experiments", Q, to="k1-quadratic"), "experiments: 'k1-quadratic'"),
    "plugins_not_a_list": (at("plugins")("my.py"), "plugins: 'my.py' is not allowed"),
    "plugins_empty_entry": (at("plugins")([""]), "plugins[0]: '' is not allowed"),
    "plugins_missing_file": (at("plugins")(["nowhere.py"]), "plugins: file 'nowhere.py' not found"),
    "plugins_missing_module": (at("plugins")(["no_such_module_here"]),
                               "plugins: module 'no_such_module_here' cannot be imported"),
    "limits_unknown_key": (at("limits")({"steps": 10}), "limits: unknown key(s) 'steps'; valid keys:"),
    "limits_negative": (at("limits")({"run_steps": -1}), "limits.run_steps: -1 is not allowed"),
    "limit_run_steps_exceeded": (at("limits")({"run_steps": 1000}), "experiments: the sweep takes"),
    "limit_result_gb_exceeded": (at("limits")({"result_gb": 1e-6}), "GB of trajectories, above the limit"),
    # ode
    "ode_method_unknown": (at("ode", "method")("rk45"), "ode.method: 'rk45' is not allowed"),
    "ode_method_number": (at("ode", "method")(4), "ode.method: 4 is not allowed"),
    "ode_rtol_zero": (at("ode", "rtol")(0), "ode.rtol: 0 is not allowed"),
    "ode_atol_string": (at("ode", "atol")("1e-12"), "ode.atol: '1e-12' is not allowed"),
    "ode_rtol_nan": (at("ode", "rtol")(NAN), "ode.rtol: nan is not a finite number"),
    "ode_stiff_solver_unknown": (at("ode", "stiff_solver")("RK45"), "ode.stiff_solver: 'RK45' is not allowed"),
    "ode_unknown_key": (at("ode", "solver")("x"), "ode: unknown key(s) 'solver'"),
    "ode_missing_rtol": (drop("ode", "rtol"), "ode: 'rtol' is a required property"),
    # measure
    "fit_points_one": (at("measure", "fit_points")(1), "measure.fit_points: 1 is not allowed"),
    "fit_points_float": (at("measure", "fit_points")(2.5), "measure.fit_points: 2.5 is not allowed"),
    "confidence_above_one": (at("measure", "confidence")(1.5), "measure.confidence: 1.5 is not allowed"),
    "confidence_zero": (at("measure", "confidence")(0), "measure.confidence: 0 is not allowed"),
    "measure_unknown_key": (at("measure", "fitpoints")(3), "measure: unknown key(s) 'fitpoints'"),
    # an experiment's keys
    "misspelt_experiment_key": (rename("experiments", Q, "lam", to="lams"),
                                f"experiments.{Q}: unknown key(s) 'lams'; valid keys:"),
    "missing_problem": (drop("experiments", Q, "problem"), f"experiments.{Q}: 'problem' is a required property"),
    "missing_methods": (drop("experiments", Q, "methods"), f"experiments.{Q}: 'methods' is a required property"),
    "missing_lam": (drop("experiments", Q, "lam"), f"experiments.{Q}: 'lam' is a required property"),
    "missing_h": (drop("experiments", Q, "h"), f"experiments.{Q}: 'h' is a required property"),
    "missing_horizon": (drop("experiments", Q, "horizon"),
                        f"experiments.{Q}: give horizon (rescaled time) or samples (steps)"),
    "problem_unknown": (exp(Q, "problem")("rosenbrock"),
                        f"experiments.{Q}.problem: unknown problem 'rosenbrock'; valid problems:"),
    "problem_a_number": (exp(Q, "problem")(3), f"experiments.{Q}.problem: 3 is not allowed"),
    "problem_option_unknown": (at("experiments", Q, "problem_options", "conditon")(5.0),
                               f"experiments.{Q}.problem_options: problem 'quadratic' has no option(s) conditon"),
    "problem_option_string": (at("experiments", Q, "problem_options", "dim")("ten"),
                              f"experiments.{Q}.problem_options.dim: 'ten' is not allowed: problem 'quadratic' takes int"),
    "problem_option_float_for_int": (at("experiments", Q, "problem_options", "dim")(4.5),
                                     f"experiments.{Q}.problem_options.dim: 4.5 is not allowed"),
    "problem_option_too_large": (at("experiments", Q, "problem_options", "dim")(10**6),
                                 f"experiments.{Q}.problem_options: quadratic: dim must lie in [1, 4096]"),
    "problem_option_out_of_range": (at("experiments", Q, "problem_options", "condition")(0.5),
                                    f"experiments.{Q}.problem_options: quadratic: condition must be >= 1"),
    "problem_options_a_list": (exp(Q, "problem_options")([4]), f"experiments.{Q}.problem_options: [4] is not allowed"),
    "hidden_not_a_list": (at("experiments", D, "problem_options", "hidden")(8),
                          f"experiments.{D}.problem_options.hidden: 8 is not allowed"),
    "hidden_too_wide": (at("experiments", D, "problem_options", "hidden")([10**5]),
                        f"experiments.{D}.problem_options: digits_mlp: hidden must be"),
    "methods_empty": (exp(Q, "methods")([]), f"experiments.{Q}.methods: [] is not allowed"),
    "method_unknown": (exp(Q, "methods")(["hb", "adam"]), f"experiments.{Q}.methods: unknown method 'adam'"),
    "method_twice": (exp(Q, "methods")(["hb", "hb"]), f"experiments.{Q}.methods: ['hb', 'hb'] is not allowed"),
    "method_not_a_name": (exp(Q, "methods")([3]), f"experiments.{Q}.methods[0]: 3 is not allowed"),
    "method_hyperparameter_out_of_range": (exp(Q, "methods")(["hb", {"name": "heavy_ball_family", "a": 1.5}]),
                                           f"experiments.{Q}.methods: method 'heavy_ball_family': hyperparameter a "
                                           "must lie in [0, 1), got 1.5; valid hyperparameters: a"),
    "method_hyperparameter_unknown": (exp(Q, "methods")([{"name": "heavy_ball_family", "a": 0.3, "b": 1}]),
                                      f"experiments.{Q}.methods: method 'heavy_ball_family' has no hyperparameter(s) b"),
    "method_hyperparameter_missing": (exp(Q, "methods")([{"name": "heavy_ball_family"}]),
                                      f"experiments.{Q}.methods: method 'heavy_ball_family' needs hyperparameter(s) a"),
    "method_hyperparameter_string": (exp(Q, "methods")([{"name": "heavy_ball_family", "a": "x"}]),
                                     f"experiments.{Q}.methods[0].a: 'x' is not allowed"),
    "lam_one": (exp(Q, "lam")([0.5, 1.0]), f"experiments.{Q}.lam[1]: 1.0 is not allowed"),
    "lam_negative": (exp(Q, "lam")([-0.5]), f"experiments.{Q}.lam[0]: -0.5 is not allowed"),
    "lam_empty": (exp(Q, "lam")([]), f"experiments.{Q}.lam: [] is not allowed"),
    "lam_string": (exp(Q, "lam")(["0.5"]), f"experiments.{Q}.lam[0]: '0.5' is not allowed"),
    "lam_infinite": (exp(Q, "lam")([INF]), f"experiments.{Q}.lam[0]: inf is not a finite number"),
    "seeds_negative": (exp(Q, "seeds")([-1]), f"experiments.{Q}.seeds[0]: -1 is not allowed"),
    "seeds_float": (exp(Q, "seeds")([1.5]), f"experiments.{Q}.seeds[0]: 1.5 is not allowed"),
    "seeds_empty": (exp(Q, "seeds")([]), f"experiments.{Q}.seeds: [] is not allowed"),
    "h_list_negative": (exp(D, "h")([0.002, -0.008]), f"experiments.{D}.h[1]: -0.008 is not allowed"),
    "h_list_empty": (exp(D, "h")([]), f"experiments.{D}.h: [] is not allowed"),
    "h_start_negative": (at("experiments", Q, "h", "start")(-0.1), f"experiments.{Q}.h.start: -0.1 is not allowed"),
    "h_start_infinite": (at("experiments", Q, "h", "start")(INF), f"experiments.{Q}.h.start: inf is not a finite"),
    "h_halvings_negative": (at("experiments", Q, "h", "halvings")(-1), f"experiments.{Q}.h.halvings: -1 is not allowed"),
    "h_halvings_sixty": (at("experiments", Q, "h", "halvings")(60),
                         f"experiments.{Q}.h: the finest h with this horizon takes"),
    "h_unknown_key": (at("experiments", Q, "h", "halving")(3), f"experiments.{Q}.h: unknown key(s) 'halving'"),
    "h_scale_not_boolean": (at("experiments", Q, "h", "scale_with_momentum")("yes"),
                            f"experiments.{Q}.h.scale_with_momentum: 'yes' is not allowed"),
    "horizon_zero": (exp(Q, "horizon")(0), f"experiments.{Q}.horizon: 0 is not allowed"),
    "horizon_nan": (exp(Q, "horizon")(NAN), f"experiments.{Q}.horizon: nan is not a finite number"),
    "horizon_huge": (exp(Q, "horizon")(1e9), f"experiments.{Q}.h: the finest h with this horizon takes"),
    "horizon_string": (exp(Q, "horizon")("4.0"), f"experiments.{Q}.horizon: '4.0' is not allowed"),
    "lam_almost_one": (exp(Q, "lam")([0.999999]), f"experiments.{Q}.h: the finest h with this horizon takes"),
    "n_records_zero": (exp(Q, "n_records")(0), f"experiments.{Q}.n_records: 0 is not allowed"),
    "n_records_float": (exp(Q, "n_records")(2.5), f"experiments.{Q}.n_records: 2.5 is not allowed"),
    "dense_steps_negative": (exp(Q, "dense_steps")(-1), f"experiments.{Q}.dense_steps: -1 is not allowed"),
    "batch_size_zero": (exp(D, "batch_size")(0), f"experiments.{D}.batch_size: 0 is not allowed"),
    "batch_size_string": (exp(D, "batch_size")("64"), f"experiments.{D}.batch_size: '64' is not allowed"),
    "batch_size_above_the_data": (exp(D, "batch_size")(100000),
                                  f"experiments.{D}.batch_size: 100000 is not allowed: problem 'digits_mlp' has 300 "
                                  "training samples"),
    "batch_size_without_data": (exp(T, "batch_size")(8),
                                f"experiments.{T}.batch_size: problem 'toy2d' has no training data"),
    "engine_unknown": (exp(Q, "engine")("jax"), f"experiments.{Q}.engine: 'jax' is not allowed"),
    "dtype_unknown": (exp(Q, "dtype")("float16"), f"experiments.{Q}.dtype: 'float16' is not allowed"),
    "dtype_float32_for_orders": (exp(Q, "dtype")("float32"),
                                 f"experiments.{Q}.dtype: claim(s) K1, K2, K3 cannot be judged on float32"),
    "device_unknown": (exp(Q, "device")("tpu"), f"experiments.{Q}.device: 'tpu' is not allowed"),
    "device_cuda_with_lightning": (both(exp(D, "device")("cuda")),
                                   f"experiments.{D}.device: only the stacked engine runs on cuda"),
    "claims_empty": (exp(Q, "claims")([]), f"experiments.{Q}.claims: an experiment without claims"),
    "claims_missing": (drop("experiments", Q, "claims"), f"experiments.{Q}.claims: an experiment without claims"),
    "claim_unknown": (exp(Q, "claims")(["K1", "K9"]), f"experiments.{Q}.claims: unknown claim 'K9'; valid claims:"),
    "claims_not_a_list": (exp(Q, "claims")("K1"), f"experiments.{Q}.claims: 'K1' is not allowed"),
    "claim_on_a_problem_it_does_not_fit": (exp(Q, "claims")(["K4"]),
                                           f"experiments.{Q}.claims: claim K4 needs a network problem"),
    "claim_without_momentum": (exp(Q, "methods")(["gd_rescaled"]),
                               f"experiments.{Q}.claims: claim K2 needs a method with momentum"),
    "order_from_two_h": (exp(Q, "h")([0.1, 0.05]), f"experiments.{Q}.claims: claim K1 needs at least three"),
    "order_from_one_halving": (at("experiments", Q, "h", "halvings")(0),
                               f"experiments.{Q}.claims: claim K1 needs at least three"),
    "curves_without_reference": (exp(D, "methods")(["hb"]), f"experiments.{D}.claims: claim K4 needs gd_rescaled"),
}
if not torch.cuda.is_available():
    CASES["device_cuda_without_gpu"] = (both(exp(Q, "engine")("stacked"), exp(Q, "device")("cuda")),
                                        f"experiments.{Q}.device: 'cuda' was asked for but torch finds no CUDA")

# Orr & Leen's on-line methods and claims, on an experiment added to the CI config
O = "o_lms"
ONLINE = dict(claims=["O1"], problem="lms", problem_options={"eigenvalues": [1.0, 0.5]},
              methods=[{"name": "annealed_sgd", "t0": 10}], lam=[0.0, 0.5], seeds={"count": 10}, h=[2.0, 4.0],
              samples=100, engine="stacked")


def online(**changes):
    def mutate(config):
        config["experiments"][O] = copy.deepcopy(ONLINE) | changes
    return mutate


CASES.update({
    "annealed_negative_t0": (online(methods=[{"name": "annealed_sgd", "t0": -1}]),
                             f"experiments.{O}.methods: method 'annealed_sgd': hyperparameter t0 must be >= 0, got -1.0"),
    "search_then_converge_without_tau": (online(methods=["search_then_converge"]),
                                         f"experiments.{O}.methods: method 'search_then_converge' needs "
                                         "hyperparameter(s) tau"),
    "search_then_converge_zero_tau": (online(methods=[{"name": "search_then_converge", "tau": 0}]),
                                      "hyperparameter tau must be positive, got 0.0"),
    "matrix_momentum_unknown_hyperparameter": (online(methods=[{"name": "matrix_momentum", "beta": 0.5}]),
                                               f"experiments.{O}.methods: method 'matrix_momentum' has no "
                                               "hyperparameter(s) beta; valid hyperparameters: t0"),
    "online_method_on_the_functional_engine": (online(engine="functional"),
                                               f"experiments.{O}.methods: method 'annealed_sgd' needs one_sample of "
                                               "the problem, which engine 'functional' does not provide"),
    "lms_negative_eigenvalue": (online(problem_options={"eigenvalues": [1.0, -0.5]}),
                                f"experiments.{O}.problem_options: lms: eigenvalues must be a non-empty list of "
                                "positive numbers"),
    "lms_odd_noise_values": (online(problem_options={"n_noise": 3}),
                             f"experiments.{O}.problem_options: lms: n_noise must be an even number >= 2"),
    "lms_eigenvalues_not_a_list": (online(problem_options={"eigenvalues": "flat"}),
                                   f"experiments.{O}.problem_options.eigenvalues: 'flat' is not allowed"),
    "seed_count_zero": (online(seeds={"count": 0}), f"experiments.{O}.seeds.count: 0 is not allowed"),
    "seed_count_misspelt": (online(seeds={"cout": 10}), f"experiments.{O}.seeds: unknown key(s) 'cout'"),
    "samples_zero": (online(samples=0), f"experiments.{O}.samples: 0 is not allowed"),
    "samples_and_horizon": (online(horizon=10.0), f"experiments.{O}: give horizon (rescaled time) or samples "
                                                  "(steps), not both"),
    "experiment_series_per_shard_zero": (online(series_per_shard=0),
                                         f"experiments.{O}.series_per_shard: 0 is not allowed"),
    "o1_without_plain_sgd": (online(lam=[0.5]), f"experiments.{O}.claims: claim O1 needs annealed_sgd with lam = 0"),
    "o1_on_a_problem_without_late_time_values": (
        online(problem="quadratic", problem_options={"dim": 2}),
        f"experiments.{O}.claims: claim O1 needs a problem that states its Hessian and per-sample gradient covariance"),
    "o3_without_matrix_momentum": (online(claims=["O3"]),
                                   f"experiments.{O}.claims: claim O3 needs a matrix momentum method"),
})

# defects that only the file's text shows
TEXT_CASES = {
    "duplicated_experiment": ("experiments:\n  a: {problem: toy2d}\n  a: {problem: quadratic}\n",
                              "line 3: key 'a' is given twice (first on line 2)"),
    "yaml_syntax_error": ("ode: {method: dopri5\nmeasure: {}\n", "YAML syntax error at line 2"),
    "not_a_mapping": ("- a\n- b\n", "a configuration is a mapping of keys, got list"),
}


def assert_one_line_and_nothing_written(message: str, folder: Path):
    assert "\n" not in message and "Traceback" not in message, message
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml"], "something was written"


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_config_is_rejected_naming_its_key(name, tmp_path):
    mutate, expected = CASES[name]
    config = copy.deepcopy(BASE)
    mutate(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        check_file(path, SCHEMA)
    message = str(err.value)
    assert expected in message, f"{name}: {expected!r} not in {message!r}"
    assert_one_line_and_nothing_written(message, tmp_path)


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_malformed_file_is_rejected_with_its_line(name, tmp_path):
    text, expected = TEXT_CASES[name]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        check_file(path, SCHEMA)
    assert expected in str(err.value), str(err.value)
    assert_one_line_and_nothing_written(str(err.value), tmp_path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothing.yaml: cannot read the configuration"):
        check_file(tmp_path / "nothing.yaml", SCHEMA)


def test_the_shipped_configs_pass():
    for config in ("config/config.yaml", "config/paper.yaml", ".test/config.yaml"):
        plan = check_file(REPO / config, SCHEMA)
        assert plan.claims and plan.size()["runs"] > 0, config
    # the example plug-in in a process of its own: its registrations must not reach the other tests' registries
    example = subprocess.run([sys.executable, "-m", "momentum_ct.cli", "check", "examples/plugin/config.yaml"],
                             capture_output=True, text=True, cwd=REPO)
    assert example.returncode == 0 and "valid;" in example.stdout, example.stderr


def test_the_command_line_check_prints_one_line_and_exits_2(tmp_path):
    config = copy.deepcopy(BASE)
    config["experiments"][Q]["horizon"] = INF
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "momentum_ct.cli", "check", str(path), "--schema", str(SCHEMA)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: experiments.{Q}.horizon: inf is not a finite number", result.stderr
    ok = subprocess.run([sys.executable, "-m", "momentum_ct.cli", "check", str(REPO / ".test" / "config.yaml"),
                         "--schema", str(SCHEMA)], capture_output=True, text=True)
    assert ok.returncode == 0 and "valid;" in ok.stdout and "run-steps" in ok.stdout, ok.stderr


def test_there_are_at_least_sixty_cases():
    assert len(CASES) + len(TEXT_CASES) >= 60

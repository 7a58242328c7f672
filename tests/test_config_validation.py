"""Malformed configurations fail at parse time, before any job runs, naming the offending key.

Two layers: the workflow's JSON schema (shapes, types, ranges) and the package's registry checks
(``momentum_ct.sweep``: problems, methods, claims, problem options, hyperparameters). The first part
runs ``snakemake -n`` on each malformed config in a temporary working directory; the second calls
the package directly, where the schema is not involved.
"""
from __future__ import annotations

import copy
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from momentum_ct import stages
from momentum_ct.errors import ConfigError
from momentum_ct.sweep import expand_series, h_grid, shard_table, validate_config

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config.yaml"
DRY_RUN_TIMEOUT = 120


def base_config() -> dict:
    return yaml.safe_load(TEST_CONFIG.read_text())


def mutated(change) -> dict:
    config = base_config()
    change(config)
    return config


def quad(config):  # the K1 quadratic experiment of .test/config.yaml
    return config["experiments"]["k1_quadratic"]


def digits(config):  # the K4 experiment (list of h, Lightning engine)
    return config["experiments"]["k4_digits_full"]


def online(**changes) -> dict:
    """An experiment of Orr & Leen's on-line methods on LMS (claim O1), with ``changes``."""
    return dict(claims=["O1"], problem="lms", problem_options={"eigenvalues": [1.0, 0.5]},
                methods=[{"name": "annealed_sgd", "t0": 10}], lam=[0.0, 0.5], seeds={"count": 10}, h=[2.0, 4.0],
                samples=100, engine="stacked") | changes


def rename(d, old, new):
    d[new] = d.pop(old)


# id -> (change to .test/config.yaml, substrings the error output must contain). Through Snakemake, a sample
# of each layer (schema, package); tests/test_validation.py runs every case through the same validation in-process.
MALFORMED = {
    "misspelt_top_level_key": (lambda c: rename(c, "series_per_shard", "serie_per_shard"),
                               ["(top level): unknown key(s) 'serie_per_shard'"]),
    "misspelt_experiment_key": (lambda c: rename(quad(c), "lam", "lams"),
                                ["experiments.k1_quadratic: unknown key(s) 'lams'"]),
    "negative_start": (lambda c: quad(c)["h"].update(start=-0.1), ["experiments.k1_quadratic.h.start: -0.1"]),
    "infinite_horizon": (lambda c: quad(c).update(horizon=float("inf")),
                         ["experiments.k1_quadratic.horizon: inf is not a finite number"]),
    "unknown_method": (lambda c: quad(c).update(methods=["hb", "adam"]),
                       ["experiments.k1_quadratic.methods", "'adam'",
                        "valid methods: annealed_sgd, eki, gd, gd_rescaled, hb, heavy_ball_family, matrix_momentum, "
                        "matrix_momentum_difference, matrix_momentum_exact, nag, search_then_converge"]),
    "bad_method_hyperparameter": (lambda c: quad(c).update(methods=["hb", {"name": "heavy_ball_family", "a": 1.5}]),
                                  ["experiments.k1_quadratic.methods", "hyperparameter a must lie in [0, 1), got 1.5",
                                   "valid hyperparameters: a"]),
    "unknown_problem_option": (lambda c: quad(c)["problem_options"].update(conditon=5.0),
                               ["experiments.k1_quadratic.problem_options", "conditon", "valid options:"]),
    "unknown_claim": (lambda c: quad(c).update(claims=["K1", "K9"]),
                      ["experiments.k1_quadratic.claims", "'K9'", "valid claims:"]),
    "claim_that_does_not_fit": (lambda c: quad(c).update(claims=["K4"]),
                                ["experiments.k1_quadratic.claims: claim K4 needs a network problem"]),
    "bad_ode_method": (lambda c: c["ode"].update(method="rk45"), ["ode.method: 'rk45' is not allowed"]),
    "zero_batch_size": (lambda c: digits(c).update(batch_size=0), ["experiments.k4_digits_full.batch_size: 0"]),
}


def dry_run(snakemake, tmp: Path, config: dict, dry: bool = True):
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp / "work"
    workdir.mkdir()
    args = (["-n"] if dry else ["-c1"]) + ["--snakefile", REPO / "Snakefile", "--configfile", path, "-d", workdir]
    return snakemake(args, timeout=DRY_RUN_TIMEOUT), workdir


@pytest.fixture(scope="module")
def malformed_runs(request, snakemake, tmp_path_factory):
    """The selected malformed configs through ``snakemake -n``, two at a time (each is a parse: seconds)."""
    root = tmp_path_factory.mktemp("malformed")
    selected = sorted({item.callspec.params["name"] for item in request.session.items
                       if item.originalname == "test_snakemake_rejects_malformed_config_at_parse_time"})

    def one(name):
        return name, dry_run(snakemake, root / name, mutated(MALFORMED[name][0]))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, selected))


def assert_nothing_ran(result, workdir: Path):
    assert "Building DAG of jobs" not in result.output, f"failed only after the DAG was built:\n{result}"
    assert not (workdir / "results").exists(), "results/ was created"
    assert not (workdir / "logs").exists(), "logs/ was created"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_snakemake_rejects_malformed_config_at_parse_time(malformed_runs, name):
    result, workdir = malformed_runs[name]
    assert result.returncode != 0, f"{name}: snakemake accepted the config\n{result}"
    assert "Error validating config file" in result.output or "invalid configuration" in result.output, str(result)
    for expected in MALFORMED[name][1]:
        assert expected in result.output, f"{name}: {expected!r} not in the error message\n{result}"
    assert_nothing_ran(result, workdir)


@pytest.mark.slow
def test_malformed_config_in_a_real_run_creates_nothing(snakemake, tmp_path):
    """Without ``-n`` as well: the run stops at parse time and writes no results or logs."""
    result, workdir = dry_run(snakemake, tmp_path, mutated(lambda c: quad(c).update(methods=["adam"])), dry=False)
    assert result.returncode != 0 and "unknown method 'adam'" in result.output, str(result)
    assert_nothing_ran(result, workdir)


@pytest.mark.slow
def test_duplicated_key_is_rejected_with_its_line(snakemake, tmp_path):
    """YAML keeps the last of two equal keys silently; the workflow refuses the file, naming the line."""
    text = (TEST_CONFIG.read_text() + "\n  k1_toy2d:\n    problem: toy2d\n")
    (tmp_path / "config.yaml").write_text(text)
    (tmp_path / "work").mkdir()
    result = snakemake(["-n", "--snakefile", REPO / "Snakefile", "--configfile", tmp_path / "config.yaml", "-d",
                        tmp_path / "work"], timeout=DRY_RUN_TIMEOUT)
    assert result.returncode != 0
    assert "key 'k1_toy2d' is given twice (first on line" in result.output, str(result)
    assert_nothing_ran(result, tmp_path / "work")


@pytest.mark.slow
def test_the_unmodified_test_config_passes_the_dry_run(snakemake, tmp_path):
    """Control: the mutations above are the only reason those runs fail."""
    result, workdir = dry_run(snakemake, tmp_path, base_config())
    assert result.returncode == 0, str(result)
    assert "train_shard" in result.output and "judge_claims" in result.output
    assert not (workdir / "results").exists()


# --- shipped configs ---------------------------------------------------------------------------------

# --- the package's checks, without the schema --------------------------------------------------------

PACKAGE_ERRORS = {
    "unknown_problem": (lambda c: quad(c).update(problem="rosenbrock"),
                        r"experiments\.k1_quadratic\.problem: unknown problem 'rosenbrock'; valid problems: "
                        r"digits_late, digits_mlp, graph_ssl, lms, quadratic"),
    "unknown_problem_option": (lambda c: quad(c)["problem_options"].update(conditon=5.0),
                               r"experiments\.k1_quadratic\.problem_options: problem 'quadratic' has no option\(s\) "
                               r"conditon; valid options: dim, condition, lipschitz"),
    "unknown_method": (lambda c: quad(c).update(methods=["hb", "adam"]),
                       r"experiments\.k1_quadratic\.methods: unknown method 'adam'; valid methods: annealed_sgd, eki, gd, gd_rescaled"),
    "unknown_method_hyperparameter": (lambda c: quad(c).update(methods=[{"name": "nag", "b": 0.3}]),
                                      r"experiments\.k1_quadratic\.methods: method 'nag' has no hyperparameter\(s\) b; "
                                      r"valid hyperparameters: none"),
    "missing_method_hyperparameter": (lambda c: quad(c).update(methods=[{"name": "heavy_ball_family"}]),
                                      r"experiments\.k1_quadratic\.methods: method 'heavy_ball_family' needs "
                                      r"hyperparameter\(s\) a; valid hyperparameters: a"),
    "bad_method_hyperparameter": (lambda c: quad(c).update(methods=[{"name": "heavy_ball_family", "a": -0.1}]),
                                  r"experiments\.k1_quadratic\.methods: method 'heavy_ball_family': hyperparameter a "
                                  r"must lie in \[0, 1\), got -0\.1; valid hyperparameters: a"),
    "method_hyperparameter_not_a_number": (lambda c: quad(c).update(methods=[{"name": "heavy_ball_family", "a": True}]),
                                           r"hyperparameter a must be a number, got True"),
    "unknown_method_in_an_entry": (lambda c: quad(c).update(methods=[{"name": "adam", "beta": 0.9}]),
                                   r"experiments\.k1_quadratic\.methods: unknown method 'adam'; valid methods: annealed_sgd, eki, gd, "),
    "same_method_twice": (lambda c: quad(c).update(methods=[{"name": "heavy_ball_family", "a": 0.5},
                                                            "heavy_ball_family(a=0.5)"]),
                          r"experiments\.k1_quadratic\.methods: 'heavy_ball_family\(a=0\.5\)' is listed twice"),
    "unknown_claim": (lambda c: quad(c).update(claims=["K9"]),
                      r"experiments\.k1_quadratic\.claims: unknown claim 'K9'; valid claims: E1, E2, E3, K1"),
    "lam_one": (lambda c: quad(c).update(lam=[1.0]),
                r"experiments\.k1_quadratic\.h \(lam=1\.0\): momentum lam must lie in \[0, 1\), got 1\.0"),
    "lam_negative": (lambda c: quad(c).update(lam=[-0.5]), r"experiments\.k1_quadratic\.h \(lam=-0\.5\): momentum"),
    "negative_h_in_list": (lambda c: digits(c).update(h=[0.002, -0.008]),
                           r"experiments\.k4_digits_full\.h \(lam=0\.9\): learning rate h must be positive, got -0\.008"),
    "negative_start": (lambda c: quad(c)["h"].update(start=-0.1),
                       r"experiments\.k1_quadratic\.h \(lam=0\.5\): learning rate h must be positive"),
    "negative_halvings": (lambda c: quad(c)["h"].update(halvings=-1),
                          r"experiments\.k1_quadratic\.h \(lam=0\.5\): halvings must be >= 0, got -1"),
    "empty_h_list": (lambda c: digits(c).update(h=[]), r"experiments\.k4_digits_full\.h .*empty"),
    "zero_horizon": (lambda c: quad(c).update(horizon=0.0), r"experiments\.k1_quadratic\.horizon must be positive"),
    "no_experiments": (lambda c: c.update(experiments={}), r"experiments: the config has no experiments"),
    "annealed_negative_t0": (lambda c: c["experiments"].update(o=online(methods=[{"name": "annealed_sgd", "t0": -1}])),
                             r"experiments\.o\.methods: method 'annealed_sgd': hyperparameter t0 must be >= 0"),
    "o3_without_matrix_momentum": (lambda c: c["experiments"].update(o=online(claims=["O3"])),
                                   r"experiments\.o\.claims: claim O3 needs a matrix momentum method"),
    "seed_count_zero": (lambda c: c["experiments"].update(o=online(seeds={"count": 0})),
                        r"experiments\.o\.seeds: count must be >= 1"),
}


@pytest.mark.parametrize("name", sorted(PACKAGE_ERRORS))
def test_package_rejects_config(name):
    change, pattern = PACKAGE_ERRORS[name]
    config = mutated(change)
    with pytest.raises(ConfigError, match=pattern):
        validate_config(config)
    with pytest.raises(ConfigError, match=pattern):
        expand_series(config)


def test_methods_with_their_own_hyperparameters_become_labelled_series():
    """``{name: heavy_ball_family, a: 0.3}`` passes the schema and becomes the series ``heavy_ball_family(a=0.3)``,
    which trains with look-ahead 0.3; plain names keep their names."""
    from snakemake.utils import validate

    config = mutated(lambda c: quad(c).update(methods=["hb", {"name": "heavy_ball_family", "a": 0.3}]))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    specs = [s for s in expand_series(config) if s.experiment == "k1_quadratic"]
    assert [s.method for s in specs] == ["hb", "heavy_ball_family(a=0.3)"]
    from momentum_ct.train.series import series_runs

    (run, *_) = series_runs(specs[1])
    assert run["columns"] == {"step_size": specs[1].h[0], "lam": 0.5, "a": 0.3}


def test_lightning_engine_refuses_methods_outside_the_heavy_ball_family():
    from momentum_ct.optim import Method, register_method, unregister_method

    class Other(Method):  # never trained here: the config check refuses it first
        name, description = "other_for_this_test", "a method outside the heavy-ball family"

        def columns(self, h, lam):
            return {"h": h}

        init = step = iterate = record = columns

    register_method(Other())
    try:
        config = mutated(lambda c: digits(c).update(methods=["other_for_this_test"], engine="lightning"))
        with pytest.raises(ConfigError, match=r"experiments\.k4_digits_full\.methods: engine 'lightning' trains the "
                                              r"heavy-ball family only, not method 'other_for_this_test'"):
            validate_config(config)
    finally:
        unregister_method("other_for_this_test")


def test_shard_table_rejects_zero_series_per_shard():
    with pytest.raises(ConfigError, match="series_per_shard must be >= 1, got 0"):
        shard_table(mutated(lambda c: c.update(series_per_shard=0)))


def test_expand_series_of_the_test_config():
    config = base_config()
    specs = expand_series(config)
    expected = sum(len(e["methods"]) * len(e["lam"]) * len(e.get("seeds", [0])) for e in config["experiments"].values())
    assert len(specs) == expected
    by_key = {(s.experiment, s.method, s.lam, s.seed): s for s in specs}
    assert len(by_key) == len(specs), "series are unique"
    hb = by_key[("k1_quadratic", "hb", 0.5, 0)]
    assert hb.h == pytest.approx(tuple(0.1 * 0.25 * 2.0**-j for j in range(5)))  # scaled by (1 - lam)^2, coarsest first
    assert hb.t_max == pytest.approx(4.0 * 0.5)  # horizon is in rescaled time
    assert hb.engine == "functional" and hb.batch_size is None and hb.dense_steps == 20 and hb.n_records == 50
    assert hb.problem_options == dict(dim=4, condition=5.0, lipschitz=1.0)
    k4 = by_key[("k4_digits_full", "gd_rescaled", 0.9, 0)]
    assert k4.h == (0.032, 0.008, 0.002) and k4.engine == "lightning"


def test_shards_group_series_within_an_experiment():
    config = base_config()
    config["series_per_shard"] = 2
    table = shard_table(config)
    quad_shards = list(table[table["experiment"] == "k1_quadratic"]["shard"])
    assert quad_shards == [0, 0, 1]
    assert table.groupby(["experiment", "shard"]).size().max() <= 2
    assert list(shard_table(config)["shard"]) == list(table["shard"]), "deterministic assignment"


def test_h_grid():
    assert h_grid([0.01, 0.04, 0.02], 0.5) == (0.04, 0.02, 0.01)
    assert h_grid(dict(start=0.2, halvings=2), 0.9) == pytest.approx((0.2, 0.1, 0.05))
    assert h_grid(dict(start=0.2, halvings=2, scale_with_momentum=True), 0.9) == pytest.approx((2e-3, 1e-3, 5e-4))
    assert h_grid(dict(start=0.2, halvings=0), 0.0) == (0.2,)


def test_validate_config_leaves_the_config_untouched():
    config = base_config()
    before = copy.deepcopy(config)
    validate_config(config)
    expand_series(config)
    assert config == before


# --- missing files between stages --------------------------------------------------------------------


def test_measure_stage_names_a_missing_trajectory(tmp_path):
    missing = tmp_path / "results" / "runs" / "experiment~x" / "shard~0" / "trajectory.parquet"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        stages.measure("K1", [str(missing)], [str(tmp_path / "meta.json")], [], [], str(tmp_path / "fits.csv"),
                       str(tmp_path / "points.csv"), {})
    assert not (tmp_path / "fits.csv").exists()


def test_predict_stage_names_a_missing_trajectory(tmp_path):
    missing = tmp_path / "nowhere" / "trajectory.parquet"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        stages.predict("K1", str(missing), str(tmp_path / "meta.json"), str(tmp_path / "p.parquet"),
                       str(tmp_path / "p.json"), {})
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b[:10] + b"\x00" * 8 + b[18:]],
                         ids=["cut short", "corrupt body"])
def test_compressed_metadata_is_deterministic_and_a_damaged_file_is_named(tmp_path, damage):
    import gzip

    from momentum_ct.io import SchemaError, read_json, write_json

    data = {"series": [{"runs": [{"h": 0.1, "diverged": False}] * 50, "spec": {"seed": s}} for s in range(20)]}
    first, second = tmp_path / "a" / "meta.json.gz", tmp_path / "b" / "meta.json.gz"
    write_json(first, data)
    write_json(second, data)
    raw = first.read_bytes()
    # gzip without a timestamp: the same content gives the same bytes, so a rerun leaves the file unchanged
    assert raw == second.read_bytes() and gzip.decompress(raw).startswith(b'{"series":')
    assert read_json(first, ["series"]) == data
    first.write_bytes(damage(raw))
    with pytest.raises(SchemaError, match=r"meta\.json\.gz cannot be read .* delete it and rerun the pipeline") as err:
        read_json(first, ["series"])
    assert "\n" not in str(err.value)

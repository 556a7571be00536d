"""The convex threshold network's Lasso: htaf's solver against celer, skglm and CVXPY+Clarabel.

The problem is Ergen et al.'s two-layer program min_z 1/2 ||Hz - y||^2 + beta ||z||_1 on their
teacher data (seed 42, d = 20, ±1 labels), H = 1{[X, 1] U >= 0} from P Gaussian directions
(deduplicated), beta = 1e-3 · n unless --beta is given.

    python benchmarks/convex_solver.py                       # n=100,P=10000 and n=1000,P=1000
    python benchmarks/convex_solver.py --cases 100x10000 --repeats 5 --json out.json
    python benchmarks/convex_solver.py --memory              # n=10000, P=100000: memory + solve

Every solver must reach the optimum to a relative objective error of --target (1e-6):
(P(z) - P*) / P* <= target, with P* the best objective any solver found (htaf's at a
certified relative gap of 1e-12 or better). htaf is run at tol = target (its duality gap
certifies it). Each peer is first calibrated: its tolerances are tried from loose to tight
and the loosest that reaches the target is kept (CVXPY+Clarabel: its defaults). Then every
solver runs once per round, the order rotating, for --repeats rounds; the table gives each
one's median. A peer run that exceeds --budget seconds is stopped (each run is a forked
child) and reported as "> budget". Peers get the dense float64 H; htaf gets its bits.

Targets (printed as PASS/FAIL, not asserted): at n=100, P=10000 htaf is >= 3x faster than the
fastest peer; at n=1000, P=1000 within 1.5x of the fastest. On a loaded machine compare the
ratios, not the times, and rerun on a quiet one.

--memory builds H at n=10000, P=100000 and solves (no new working-set round after
--memory-time seconds): it reports the bytes of H, the tracemalloc peaks of building and
solving (numpy's allocations), the growth of the peak RSS and the solve's certificate.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from htaf.families.convex.arrangements import Arrangements
from htaf.families.convex.solver import solve_lasso
from htaf.io import atomic_write_json

TARGETS = {"100x10000": ("faster", 3.0), "1000x1000": ("within", 1.5)}
LADDER = (1e-4, 1e-6, 1e-8, 1e-10)


def teacher(n: int, d: int = 20, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Ergen et al.'s data: X ~ N(0, 1), y = sign(tanh(tanh([X, 1] W1) W2) W3), W ~ U[-1, 1]."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    Xa = np.hstack([X, np.ones((n, 1))])
    W1, W2, W3 = (
        rng.uniform(-1, 1, (d + 1, 20)),
        rng.uniform(-1, 1, (20, 20)),
        rng.uniform(-1, 1, 20),
    )
    y = np.tanh(np.tanh(Xa @ W1) @ W2) @ W3
    return X, np.where(y >= 0, 1.0, -1.0)


def problem(n: int, P: int, beta: float | None) -> dict[str, Any]:
    X, y = teacher(n)
    H = Arrangements.sample(X, P, np.random.default_rng(0))
    return {
        "n": n,
        "P": P,
        "columns": H.n_columns,
        "H": H,
        "dense": H.dense(),
        "y": y,
        "beta": 1e-3 * n if beta is None else beta,
    }


def objective(prob: dict[str, Any], z: np.ndarray) -> float:
    r = prob["y"] - prob["dense"] @ z
    return float(0.5 * r @ r + prob["beta"] * np.abs(z).sum())


# -- the solvers: each returns z -----------------------------------------------------------------
def run_htaf(prob: dict[str, Any], tol: float) -> np.ndarray:
    return solve_lasso(prob["H"], prob["y"], prob["beta"], tol=tol).z


def run_celer(prob: dict[str, Any], tol: float) -> np.ndarray:
    from celer import Lasso

    model = Lasso(alpha=prob["beta"] / prob["n"], fit_intercept=False, tol=tol, max_iter=10_000)
    return model.fit(prob["dense"], prob["y"]).coef_


def run_skglm(prob: dict[str, Any], tol: float) -> np.ndarray:
    from skglm import Lasso

    model = Lasso(alpha=prob["beta"] / prob["n"], fit_intercept=False, tol=tol, max_iter=10_000)
    return model.fit(prob["dense"], prob["y"]).coef_


def run_clarabel(prob: dict[str, Any], tol: float) -> np.ndarray:
    import cvxpy as cp

    z = cp.Variable(prob["dense"].shape[1])
    cost = 0.5 * cp.sum_squares(prob["dense"] @ z - prob["y"]) + prob["beta"] * cp.norm1(z)
    cp.Problem(cp.Minimize(cost)).solve(solver=cp.CLARABEL)
    return np.asarray(z.value)


def run_scs(prob: dict[str, Any], tol: float) -> np.ndarray:
    import cvxpy as cp

    z = cp.Variable(prob["dense"].shape[1])
    cost = 0.5 * cp.sum_squares(prob["dense"] @ z - prob["y"]) + prob["beta"] * cp.norm1(z)
    cp.Problem(cp.Minimize(cost)).solve(solver=cp.SCS, eps=tol)
    return np.asarray(z.value)


SOLVERS: dict[str, Callable[[dict[str, Any], float], np.ndarray]] = {
    "htaf": run_htaf,
    "celer": run_celer,
    "skglm": run_skglm,
    "cvxpy+clarabel": run_clarabel,
    "cvxpy+scs": run_scs,
}


def available(name: str) -> str | None:
    """None if the peer imports, else why not."""
    module = {"celer": "celer", "skglm": "skglm", "cvxpy+clarabel": "cvxpy", "cvxpy+scs": "cvxpy"}
    module = module.get(name)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError as err:
        return f"not installed ({err}); pip install 'htaf[bench]'"
    return None


# -- timing in a forked child, so that a slow peer can be stopped --------------------------------
def _child(conn: Any, name: str, prob: dict[str, Any], tol: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        z = SOLVERS[name](prob, tol)
        elapsed = time.perf_counter() - t0
    conn.send((elapsed, objective(prob, z)))


def timed(name: str, prob: dict[str, Any], tol: float, budget: float) -> tuple[float, float]:
    """(seconds, objective) of one solve, or (inf, nan) if it ran past ``budget``."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, name, prob, tol))
    proc.start()
    if parent.poll(budget):
        out = parent.recv()
        proc.join()
        return out
    proc.kill()
    proc.join()
    return float("inf"), float("nan")


def warm_up(names: list[str]) -> None:
    """Compile/import everything once (numba JIT of skglm, htaf's C kernels, CVXPY)."""
    small = problem(30, 200, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            SOLVERS[name](small, 1e-6)


def run_case(n: int, P: int, args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    prob = problem(n, P, args.beta)
    best = solve_lasso(prob["H"], prob["y"], prob["beta"], tol=1e-12)
    reference = best.objective
    print(
        f"\nn={n}, P={P} ({prob['columns']} distinct columns), beta={prob['beta']:g}; "
        f"reference objective {reference:.12g} (htaf, relative gap {best.relative_gap:.1e})"
    )
    settings: dict[str, float] = {}
    calibration: dict[str, list[dict[str, float]]] = {}
    too_slow: set[str] = set()
    for name in names:
        ladder = [args.target] if name == "htaf" else [1e-8] if name == "cvxpy+clarabel" else LADDER
        calibration[name] = []
        for tol in ladder:
            seconds, value = timed(name, prob, tol, args.budget)
            reference = min(reference, value) if np.isfinite(value) else reference
            calibration[name].append({"tol": tol, "seconds": seconds, "objective": value})
            if not np.isfinite(seconds):
                too_slow.add(name)
                break
            if (value - reference) / reference <= args.target:
                settings[name] = tol
                break
        else:
            settings.setdefault(name, ladder[-1])
    times: dict[str, list[float]] = {name: [] for name in names}
    values: dict[str, float] = {}
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if name in too_slow or (times[name] and not np.isfinite(times[name][-1])):
                times[name].append(float("inf"))  # ran past the budget once: not again
                continue
            seconds, value = timed(name, prob, settings.get(name, LADDER[-1]), args.budget)
            times[name].append(seconds)
            if np.isfinite(value):
                values[name] = value
    rows = {}
    for name in names:
        med = statistics.median(times[name])
        rel = (values[name] - reference) / reference if name in values else float("nan")
        reached = bool(rel <= args.target * 1.0000001) if np.isfinite(rel) else False
        rows[name] = {
            "median_s": med,
            "times_s": times[name],
            "tol": settings.get(name),
            "relative_error": rel,
            "reached_target": reached,
        }
    return {
        "n": n,
        "P": P,
        "columns": prob["columns"],
        "beta": prob["beta"],
        "reference": reference,
        "solvers": rows,
        "calibration": calibration,
    }


def report(case: dict[str, Any], budget: float) -> dict[str, Any]:
    rows = case["solvers"]
    print(f"{'solver':<16}{'median s':>10}{'tol':>10}{'rel. error':>12}  reached")
    for name, row in rows.items():
        med = f"> {budget:g}" if not np.isfinite(row["median_s"]) else f"{row['median_s']:.3f}"
        tol = "-" if row["tol"] is None else f"{row['tol']:g}"
        print(
            f"{name:<16}{med:>10}{tol:>10}{row['relative_error']:>12.1e}  {row['reached_target']}"
        )
    peers = {k: v["median_s"] for k, v in rows.items() if k != "htaf" and v["reached_target"]}
    peers.update(
        {
            k: v["median_s"]
            for k, v in rows.items()
            if k != "htaf" and not np.isfinite(v["median_s"])
        }
    )
    key = f"{case['n']}x{case['P']}"
    verdict: dict[str, Any] = {}
    if peers and "htaf" in rows:
        fastest = min(peers, key=peers.get)
        ratio = peers[fastest] / rows["htaf"]["median_s"]
        verdict = {"fastest_peer": fastest, "speedup": ratio}
        line = f"htaf is {ratio:.2f}x faster than the fastest peer ({fastest})"
        if key in TARGETS:
            kind, value = TARGETS[key]
            ok = ratio >= value if kind == "faster" else ratio >= 1 / value
            want = f">= {value}x faster" if kind == "faster" else f"within {value}x"
            verdict["target"] = want
            verdict["pass"] = bool(ok and rows["htaf"]["reached_target"])
            line += f"; target {want}: {'PASS' if verdict['pass'] else 'FAIL'}"
        print(line)
    return verdict


def memory_line(n: int = 10_000, P: int = 100_000, max_time_s: float = 120.0) -> dict[str, Any]:
    """Build H and solve at n x P (no new working-set round after ``max_time_s``); bytes of H,
    tracemalloc peaks, peak-RSS growth, and the solve's certificate."""
    import resource
    import tracemalloc

    X, y = teacher(n)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    H = Arrangements.sample(X, P, np.random.default_rng(0))
    build_s = time.perf_counter() - t0
    build_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    result = solve_lasso(H, y, 1e-3 * n, tol=1e-6, max_time_s=max_time_s)
    solve_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0  # KiB on Linux
    out = {
        "n": n,
        "P": P,
        "columns": H.n_columns,
        "h_bytes": H.nbytes,
        "h_float32_bytes": 4 * n * H.n_columns,
        "build_s": build_s,
        "build_peak_bytes": build_peak,
        "solve_peak_bytes": solve_peak,
        "peak_rss_growth_bytes": rss * 1024,
        "solve": result.info(),
    }
    mb = 1e6
    print(
        f"\nmemory, n={n}, P={P} ({H.n_columns} distinct columns): H holds "
        f"{H.nbytes / mb:.1f} MB as bits ({4 * n * H.n_columns / mb:.0f} MB as float32); "
        f"tracemalloc peak {build_peak / mb:.0f} MB building, {solve_peak / mb:.0f} MB "
        f"solving; peak RSS grew {rss * 1024 / mb:.0f} MB"
    )
    print(
        f"  built in {build_s:.1f} s; solved in {result.time_s:.1f} s, optimal "
        f"{result.optimal} (relative gap {result.relative_gap:.1e}), "
        f"{np.count_nonzero(result.z)} units; H <= 150 MB: "
        f"{'PASS' if H.nbytes <= 150 * mb else 'FAIL'}"
    )
    return out


def _split(name: str, seed: int) -> tuple[np.ndarray, ...]:
    """Training and test rows of htaf's split ``seed`` (a bundled table), or of a generated
    table (``friedman1``: scikit-learn's Friedman #1, noise 1; ``linear``: y = X w + 2 noise,
    10 standard normal features), 300 training and 150 test rows standardized on the training
    rows: the untuned checks, never used to choose anything."""
    from htaf.data.registry import load

    if name in ("diabetes", "breast_cancer"):
        data = load(name, split_seed=seed)
        return tuple(
            np.asarray(v, np.float64)
            for v in (data.X_train, data.y_train, data.X_test, data.y_test)
        )
    from sklearn.datasets import make_friedman1

    rng = np.random.default_rng(100 + seed)
    if name == "friedman1":
        X, y = make_friedman1(n_samples=450, n_features=10, noise=1.0, random_state=100 + seed)
    else:
        X = rng.standard_normal((450, 10))
        y = X @ rng.standard_normal(10) + 2.0 * rng.standard_normal(450)
    mx, sx, my, sy = X[:300].mean(0), X[:300].std(0), y[:300].mean(), y[:300].std()
    X, y = (X - mx) / sx, (y - my) / sy
    return X[:300], y[:300], X[300:], y[300:]


def beta_path_line(
    seeds: int = 5,
    n_directions: int = 2000,
    plots: str | None = None,
    plain: bool = False,
    synthetic: int = 3,
) -> dict[str, Any]:
    """beta="auto" against fixed-beta references on htaf's own splits (``split_seed`` s):
    diabetes test R² against scikit-learn's RidgeCV, breast_cancer test accuracy, the generated
    regression tables (``synthetic`` seeds each) against RidgeCV, and the time of the path
    (cross-validation included) divided by one solve at the chosen beta. The defaults of the
    family (the skip term, 3 deals of 5 folds, ``cv_rule="auto"``); ``plain``: Ergen et al.'s
    program alone, one deal, ``"min"`` (the defaults before the skip term)."""
    from sklearn.linear_model import RidgeCV

    from htaf.families.convex.model import fit_two_layer

    options = (
        {"linear": False, "repeats": 1, "cv_rule": "min"}
        if plain
        else {"linear": True, "repeats": 3, "cv_rule": "auto"}
    )
    tables = {
        "diabetes": seeds,
        "breast_cancer": seeds,
        "friedman1": synthetic,
        "linear": synthetic,
    }
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in tables}
    for name, count in tables.items():
        for seed in range(count):
            X, y, Xt, yt = _split(name, seed)
            regression = name != "breast_cancer"
            target = y if regression else 2 * y - 1
            fit = {"n_directions": n_directions, "rng": seed, "center": regression}
            net = fit_two_layer(X, target, beta="auto", **fit, **options)
            linear = options["linear"]
            one = fit_two_layer(X, target, beta=net.info["beta"], **fit, linear=linear)
            row = {"seed": seed, "beta": net.info["beta"], "units": net.info["units"],
                   "path_s": net.info["path_time_s"], "one_solve_s": one.info["solve_time_s"],
                   "path_ratio": net.info["path_time_s"] / one.info["solve_time_s"]}  # fmt: skip
            pred = net.predict(Xt)
            if plots and seed == 0 and name in ("diabetes", "breast_cancer"):
                from htaf.studies.convex import plot_beta_path

                out = Path(plots) / name
                plot_beta_path(net.info["path"], out, f"{name}, split seed 0, P={n_directions}")
            if regression:
                ridge = RidgeCV(alphas=np.logspace(-3, 3, 25)).fit(X, y)
                row["r2"] = 1 - np.mean((pred - yt) ** 2) / np.var(yt)
                row["ridgecv_r2"] = ridge.score(Xt, yt)
            else:
                row["accuracy"] = float(np.mean((pred >= 0) == (yt > 0.5)))
            rows[name].append(row)
            print(name, {k: round(float(v), 4) for k, v in row.items()}, flush=True)
    d, b = rows["diabetes"], rows["breast_cancer"]
    summary = {
        "options": options,
        "diabetes_r2": statistics.mean(r["r2"] for r in d),
        "diabetes_ridgecv_r2": statistics.mean(r["ridgecv_r2"] for r in d),
        "breast_cancer_accuracy": statistics.mean(r["accuracy"] for r in b),
        "path_ratio_median": statistics.median(r["path_ratio"] for r in d + b),
    }
    for name in ("friedman1", "linear"):
        if rows[name]:
            summary[f"{name}_r2"] = statistics.mean(r["r2"] for r in rows[name])
            summary[f"{name}_ridgecv_r2"] = statistics.mean(r["ridgecv_r2"] for r in rows[name])
    print(
        f"\nbeta='auto' {options} over split seeds 0..{seeds - 1}: diabetes test R² "
        f"{summary['diabetes_r2']:.4f} (RidgeCV {summary['diabetes_ridgecv_r2']:.4f}: "
        f"{'PASS' if summary['diabetes_r2'] >= summary['diabetes_ridgecv_r2'] else 'FAIL'}); "
        f"breast_cancer test accuracy {summary['breast_cancer_accuracy']:.4f}; path time / one "
        f"solve at the chosen beta: median {summary['path_ratio_median']:.1f}"
    )
    for name in ("friedman1", "linear"):
        if rows[name]:
            print(
                f"{name} (generated, seeds 0..{synthetic - 1}): test R² {summary[f'{name}_r2']:.4f}"
                f" (RidgeCV {summary[f'{name}_ridgecv_r2']:.4f})"
            )
    return {"rows": rows, "summary": summary}


# -- n = 10 000, P = 100 000: every solver under the same time and memory caps ----------------
def friedman_table(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A generated regression table (scikit-learn's Friedman #1: 10 features, 5 of them used,
    y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + N(0, 1)), standardized and centered."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=n, n_features=10, noise=1.0, random_state=seed)
    X = (X - X.mean(0)) / X.std(0)
    return X, (y - y.mean()) / y.std()


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _capped_child(
    conn: Any, name: str, prob: dict[str, Any], cap_bytes: int, budget: float
) -> None:
    import resource

    limit = _vm_bytes() + cap_bytes  # the cap on top of what the fork inherited
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "htaf":
                result = solve_lasso(
                    prob["H"], prob["y"], prob["beta"], tol=1e-6, max_time_s=budget,
                    max_working_set=prob["max_working_set"],
                )  # fmt: skip
                out = {"relative_gap": result.relative_gap, "optimal": result.optimal,
                       "objective": result.objective, "nonzeros": int(np.count_nonzero(result.z)),
                       "rounds": result.iterations, "history": result.history}  # fmt: skip
            else:
                prob = {**prob, "dense": prob["H"].dense()}  # the peers take a dense H
                z = SOLVERS[name](prob, 1e-8)
                value, rel = _gap_of(prob, z)
                out = {"objective": value, "relative_gap": rel}
    except MemoryError:
        out = {"error": f"out of memory at the {cap_bytes / 2**30:.1f} GiB cap"}
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["rss_at_fork_bytes"] = rss0
    conn.send(out)


def _gap_of(prob: dict[str, Any], z: np.ndarray) -> tuple[float, float]:
    from htaf.families.convex.solver import certificate

    primal, dual, _, _ = certificate(prob["H"], prob["y"], np.asarray(z, float), prob["beta"])
    return primal, max(primal - dual, 0.0) / primal


def large_line(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """n x P (default 10 000 x 100 000) on Ergen's teacher and on a generated table: time,
    peak RSS and relative duality gap of htaf and each peer, each in a forked child under the
    same wall-clock budget and address-space cap (the peers get the dense float64 H)."""
    n, P = (int(v) for v in args.large_size.lower().split("x"))
    out: dict[str, Any] = {}
    for data in ("teacher", "friedman"):
        X, y = teacher(n) if data == "teacher" else friedman_table(n)
        t0 = time.perf_counter()
        H = Arrangements.sample(X, P, np.random.default_rng(0))
        build = time.perf_counter() - t0
        prob = {"n": n, "H": H, "y": y, "beta": 1e-3 * n, "max_working_set": args.max_working_set}
        print(f"\n{data}, n={n}, P={P} ({H.n_columns} distinct columns), beta={prob['beta']:g}: "
              f"H built in {build:.1f} s, {H.nbytes / 2**20:.0f} MiB of bits; dense float64 "
              f"H would take {8 * n * H.n_columns / 2**30:.1f} GiB", flush=True)  # fmt: skip
        rows = {}
        for name in names:
            ctx = mp.get_context("fork")
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_capped_child,
                args=(child, name, prob, int(args.memory_cap * 2**30), args.large_budget),
            )
            proc.start()
            grace = 120.0 if name == "htaf" else 0.0  # htaf stops itself; its last round ends
            if parent.poll(args.large_budget + grace):
                row = parent.recv()
                proc.join()
            else:
                proc.kill()
                proc.join()
                row = {"error": f"stopped after {args.large_budget + grace:.0f} s"}
            row["load_average"] = os.getloadavg()[0]
            rows[name] = row
            print(f"  {name:<16}" + ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in row.items() if k != "history"
            ), flush=True)  # fmt: skip
            for step in row.get("history", []):  # the time / working-set curve
                print("    " + ", ".join(f"{k} {v:.4g}" for k, v in step.items()), flush=True)
        out[data] = {"n": n, "P": P, "columns": H.n_columns, "build_s": build, "solvers": rows}
    return out


def _rss_parts() -> dict[str, int]:
    """Resident bytes now: anonymous (the process's own) and file-backed (H's mapped pages,
    which the kernel can drop and reread), from /proc/self/status."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("RssAnon", "RssFile"):
                out[f"{key.lower()}_bytes"] = int(line.split()[1]) * 1024
    return out


def out_of_core_line(args: argparse.Namespace) -> dict[str, Any]:
    """n x P (default 100 000 x 100 000) with H memory-mapped in --cache-dir: build, then solve
    under --large-budget seconds; the certificate it reached and the peak RSS."""
    import resource

    n, P = (int(v) for v in args.ooc_size.lower().split("x"))
    X, y = teacher(n)
    t0 = time.perf_counter()
    H = Arrangements.sample(X, P, np.random.default_rng(0), cache_dir=args.cache_dir)
    build = time.perf_counter() - t0
    result = solve_lasso(H, y, 1e-3 * n, tol=1e-6, max_time_s=args.large_budget)
    out = {
        "n": n, "P": P, "columns": H.n_columns, "h_bytes_on_disk": H.nbytes, "build_s": build,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "load_average": os.getloadavg()[0], "solve": result.info(), **_rss_parts(),
    }  # fmt: skip
    print(
        f"\nout of core, n={n}, P={P} ({H.n_columns} distinct columns, {H.nbytes / 2**30:.2f} GiB "
        f"of bits on disk): built in {build:.0f} s; solve {result.time_s:.0f} s, optimal "
        f"{result.optimal}, relative gap {result.relative_gap:.2e}; peak RSS "
        f"{out['peak_rss_bytes'] / 2**30:.2f} GiB (at the end: "
        f"{out.get('rssanon_bytes', 0) / 2**30:.2f} GiB anonymous, "
        f"{out.get('rssfile_bytes', 0) / 2**30:.2f} GiB of mapped file pages)"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="100x10000,1000x1000", help="comma-separated nxP")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--target", type=float, default=1e-6, help="relative objective error")
    p.add_argument("--beta", type=float, default=None, help="absolute beta (default 1e-3 n)")
    p.add_argument("--budget", type=float, default=30.0, help="seconds per peer run")
    p.add_argument("--solvers", default=",".join(SOLVERS))
    p.add_argument("--memory", action="store_true", help="only the n=10000, P=100000 line")
    p.add_argument(
        "--memory-time",
        type=float,
        default=120.0,
        help="--memory: no new working-set round after this many seconds",
    )
    p.add_argument("--beta-path", action="store_true", help="only the beta='auto' figures")
    p.add_argument("--plots", default=None, help="--beta-path: draw the paths (PNG+SVG) here")
    p.add_argument(
        "--plain",
        action="store_true",
        help="--beta-path: Ergen et al.'s program alone, one deal of folds, rule 'min'",
    )
    p.add_argument("--large", action="store_true", help="only the capped large-size line")
    p.add_argument("--large-size", default="10000x100000")
    p.add_argument("--large-budget", type=float, default=540.0, help="seconds per solver")
    p.add_argument("--memory-cap", type=float, default=2.0, help="GiB per solver (--large)")
    p.add_argument(
        "--max-working-set", type=int, default=None, help="htaf's cap (default MAX_WORKING_SET)"
    )
    p.add_argument("--out-of-core", action="store_true", help="only the memory-mapped line")
    p.add_argument("--ooc-size", default="100000x100000")
    p.add_argument("--cache-dir", default="/tmp", help="--out-of-core: where H's bits go")
    p.add_argument("--json", default=None, help="write every number here")
    args = p.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs")
    results: dict[str, Any] = {"load_average": load, "cpus": os.cpu_count()}
    if args.beta_path:
        results["beta_path"] = beta_path_line(plots=args.plots, plain=args.plain)
    elif args.large:
        names = [n for n in args.solvers.split(",") if not available(n)]
        results["large"] = large_line(args, names)
    elif args.out_of_core:
        results["out_of_core"] = out_of_core_line(args)
    elif args.memory:
        results["memory"] = memory_line(max_time_s=args.memory_time)
    else:
        names = []
        for name in args.solvers.split(","):
            why = available(name)
            if why:
                print(f"{name}: {why}")
            else:
                names.append(name)
        warm_up(names)
        results["cases"] = []
        for spec in args.cases.split(","):
            n, P = (int(v) for v in spec.lower().split("x"))
            case = run_case(n, P, args, names)
            case["verdict"] = report(case, args.budget)
            results["cases"].append(case)
    if args.json:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

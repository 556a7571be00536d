"""``htaf study NAME``: the paper's analyses and the seeds' other methods.

``gradient-flow``: layer-1 gradient norms; ``convex``: Ergen et al.'s convex threshold networks
beside trained step networks; ``decoupled``: Troiano et al.'s decoupled backward rules;
``icbm-difficulty``: the paper's three ICBM claims across ``shapes`` difficulty levels;
``llm``: steps in the feed-forward layers of a pretrained transformer.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from htaf.studies.gradient_flow import DEFAULTS

    p = sub.add_parser(
        "study",
        help="run one of the paper's studies (gradient-flow, convex, decoupled, icbm-difficulty, "
        "llm)",
    )
    studies = p.add_subparsers(dest="study", metavar="STUDY", required=True)
    g = studies.add_parser(
        "gradient-flow",
        help="layer-1 gradient norms: htaf(2,11), htaf(8,2.75), htaf(11,2), sigmoid(22x), relu",
    )
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    g.add_argument("--dataset", default=DEFAULTS["dataset"])
    g.add_argument(
        "--seeds", type=int, default=DEFAULTS["seeds"], help="seeds 0..N-1 (geometric mean)"
    )
    g.add_argument("--seed", type=int, default=None, help="run this single seed instead")
    g.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    g.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=["sgd", "adam"])
    g.add_argument("--data-dir", default=None)
    g.add_argument(
        "--data-option",
        dest="data_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option (TOML literal), e.g. --dataset teacher --data-option n=5000 "
        "--data-option flip=0.15; repeatable",
    )
    g.add_argument("--jobs", type=int, default=1, help="parallel runs (default: 1)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=run_gradient_flow)
    _add_convex(studies)
    _add_decoupled(studies)
    _add_icbm_difficulty(studies)
    _add_llm(studies)


def _add_icbm_difficulty(studies: argparse._SubParsersAction) -> None:
    from htaf.studies.icbm_difficulty import DEFAULTS as I

    c = studies.add_parser(
        "icbm-difficulty",
        help="ICBM rows on shapes at each difficulty level: accuracy vs ReLU, near-binary "
        "fraction, loss to thresholding",
    )
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument(
        "--levels", default=",".join(map(str, I["levels"])), help="comma-separated levels (0-4)"
    )
    c.add_argument(
        "--estimators",
        default=",".join(I["estimators"]),
        help="comma-separated estimator specs, the rows (default: the ICBM compare default's)",
    )
    c.add_argument(
        "--htaf-row", default=None, help="the row the claims test (default: first htaf*)"
    )
    c.add_argument("--seeds", type=int, default=I["seeds"], help="seeds 0..N-1 (at least 2)")
    c.add_argument("--n", type=int, default=I["n"], help="images per level")
    c.add_argument("--epochs", type=int, default=I["epochs"])
    c.add_argument("--lr", type=float, default=I["lr"])
    c.add_argument("--batch-size", type=int, default=I["batch_size"])
    c.add_argument(
        "--data-option", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
        help="a shapes option over every level's (TOML literal), e.g. --data-option noise=0.1",
    )  # fmt: skip
    c.add_argument("--jobs", type=int, default=I["jobs"], help="parallel runs")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=run_icbm_difficulty)


def run_icbm_difficulty(args: argparse.Namespace) -> int:
    from htaf.api import split_specs
    from htaf.config import ConfigError, apply_overrides
    from htaf.studies import icbm_difficulty

    try:
        levels = [int(x) for x in _names(args.levels)]
    except ValueError:
        raise ConfigError(
            f"--levels must be comma-separated integers, got {args.levels!r}"
        ) from None
    result = icbm_difficulty.run(
        args.out,
        levels=levels,
        estimators=split_specs(args.estimators),
        htaf_row=args.htaf_row,
        seeds=args.seeds,
        n=args.n,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        data_options=apply_overrides({}, args.data_options),
        jobs=args.jobs,
        progress=not args.no_progress,
    )
    return _print_result(
        result, f"wall time {result['wall_s']:.0f} s", f"{args.out}/icbm_difficulty.json"
    )


def _add_convex(studies: argparse._SubParsersAction) -> None:
    from htaf.studies.convex import BASELINES
    from htaf.studies.convex import DEFAULTS as C

    c = studies.add_parser(
        "convex",
        help="Ergen et al.'s benchmark: convex threshold networks vs step networks trained "
        "with STE/ReLU/leaky/clipped backward and with HTAF",
    )
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--n", type=int, default=C["n"], help="training points")
    c.add_argument("--d", type=int, default=C["d"], help="input dimension")
    c.add_argument("--n-test", type=int, default=C["n_test"])
    c.add_argument("--seed", type=int, default=C["seed"])
    c.add_argument(
        "--beta-per-sample",
        type=float,
        default=C["beta_per_sample"],
        help="beta = this × n (default 1e-3)",
    )
    c.add_argument(
        "--directions",
        type=int,
        default=C["directions"],
        help="P, directions of the two-layer program",
    )
    c.add_argument("--width", type=int, default=C["width"], help="deep variant's first layer")
    c.add_argument("--epochs", type=int, default=C["epochs"], help="baselines' epochs")
    c.add_argument("--lr", type=float, default=C["lr"])
    c.add_argument("--eval-every", type=int, default=C["eval_every"])
    c.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help="comma-separated subset of: " + ", ".join(BASELINES),
    )
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=run_convex)


def _add_decoupled(studies: argparse._SubParsersAction) -> None:
    from htaf.studies.decoupled import DEFAULTS as D
    from htaf.studies.decoupled import EXPERIMENTS

    c = studies.add_parser(
        "decoupled",
        help="Troiano et al.'s decoupled backward rules (digits MLP, LeNet-5, Ones unit) beside "
        "HTAF and STE",
    )
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument(
        "--experiments",
        default=",".join(D["experiments"]),
        help="comma-separated subset of: " + ", ".join(EXPERIMENTS),
    )
    c.add_argument("--seeds", type=int, default=D["seeds"])
    c.add_argument("--lenet-epochs", type=int, default=D["lenet_epochs"])
    c.add_argument("--lenet-init", default=D["lenet_init"], choices=["torch", "glorot"],
                   help="LeNet's initialisation (default: %(default)s)")  # fmt: skip
    c.add_argument("--lenet-lr", type=float, default=D["lenet_lr"],
                   help="LeNet's learning rate (default: the paper's 0.01)")  # fmt: skip
    c.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of every experiment (default: each one's own)",
    )
    c.add_argument("--data-dir", default=None, help="where MNIST files are looked for")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=run_decoupled)


def run_convex(args: argparse.Namespace) -> int:
    from htaf.studies import convex

    result = convex.run(
        args.out,
        n=args.n,
        d=args.d,
        n_test=args.n_test,
        seed=args.seed,
        beta_per_sample=args.beta_per_sample,
        directions=args.directions,
        width=args.width,
        epochs=args.epochs,
        lr=args.lr,
        eval_every=args.eval_every,
        baselines=_names(args.baselines),
        progress=not args.no_progress,
    )
    check = result["objective_check"]
    claim = (
        f"best convex objective ({check['best_convex']}) {check['convex_objective']:.5f} "
        f"<= best trained ({check['best_trained']}) {check['trained_objective']:.5f}: "
        f"{check['holds']}"
        if "holds" in check
        else None
    )
    return _print_result(result, claim, f"{args.out}/results.json")


def run_decoupled(args: argparse.Namespace) -> int:
    from htaf.studies import decoupled

    extra = {} if args.epochs is None else {"epochs": args.epochs}
    result = decoupled.run(
        args.out,
        experiments=_names(args.experiments),
        seeds=args.seeds,
        lenet_epochs=args.lenet_epochs,
        lenet_init=args.lenet_init,
        lenet_lr=args.lenet_lr,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        **extra,
    )
    tied = result["constant_vs_tied"]
    claim = (
        f"digits MLP, logistic forward: tied {tied['tied']:.4f}, constant "
        f"{tied['constant']:.4f} (constant - tied: {tied['constant_minus_tied_points']:+.2f} "
        f"points); constant within 2 points of tied: {tied['holds']}"
        if tied
        else None
    )
    return _print_result(result, claim, f"{args.out}/results.json")


def _names(text: str) -> list[str]:
    """A comma-separated list, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _print_result(result: dict, claim: str | None, saved: str) -> int:
    """A study's table, the line on its claim (if it could be checked), plots, results file."""
    print(result["table"])
    if claim:
        print(claim)
    for path in result["plots"]:
        print(path)
    print(saved)
    return 0


def run_gradient_flow(args: argparse.Namespace) -> int:
    from htaf.config import apply_overrides
    from htaf.studies import gradient_flow

    single = {} if args.seed is None else {"seed": args.seed}
    result = gradient_flow.run(
        args.out,
        epochs=args.epochs,
        dataset=args.dataset,
        seeds=args.seeds,
        lr=args.lr,
        optimizer=args.optimizer,
        data_dir=args.data_dir,
        jobs=args.jobs,
        data_options=apply_overrides({}, args.data_options),
        progress=not args.no_progress,
        **single,
    )
    seeds = list(result["seed_ratios"])
    print("last-epoch mean L2 norm of the layer-1 gradient (geometric mean over seeds):")
    for label, values in result["norms"].items():
        print(f"  {label:<20} {values[-1]:.3e}")
    print(f"htaf(2,11) / other: geometric mean, then per seed {', '.join(seeds)}")
    for label, ratio in result["ratios"].items():
        each = "  ".join(f"{result['seed_ratios'][s][label]:.3g}" for s in seeds)
        print(f"  {label:<20} {ratio:.3g}x   [{each}]")
    for path in result["plots"]:
        print(path)
    print(f"{args.out}/gradient_flow.json")
    return 0


def _add_llm(studies: argparse._SubParsersAction) -> None:
    from htaf.studies.llm import DEFAULTS as L

    c = studies.add_parser(
        "llm",
        help="steps in k FFN layers of a pretrained transformer (default: the packaged "
        "all-MiniLM-L6-v2, self-distillation), fine-tuned with htaf, ste, ste_clipped, "
        "scaled_sigmoid",
    )
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument(
        "--model",
        default=L["model"],
        help="a local Hugging Face model folder, or 'tiny-llama' (the causal path); default: "
        "the packaged all-MiniLM-L6-v2",
    )
    c.add_argument(
        "--tokenizer", default=L["tokenizer"], help="tokenizer folder (default: the model's); "
        "'bytes' for the byte tokenizer",
    )  # fmt: skip
    c.add_argument("--estimators", default=",".join(L["estimators"]), help="comma-separated")
    c.add_argument("--ks", default=None, help="comma-separated k values (default: 0..L)")
    c.add_argument("--order", default=L["order"], choices=["last", "first"],
                   help="which k layers are stepped (default: the last k)")  # fmt: skip
    c.add_argument("--n-train", type=int, default=L["n_train"], help="training sentences")
    c.add_argument("--n-test", type=int, default=L["n_test"], help="held-out sentences")
    c.add_argument("--max-length", type=int, default=L["max_length"], help="tokens a text")
    c.add_argument("--batch-size", type=int, default=L["batch_size"])
    c.add_argument("--steps", type=int, default=L["steps"], help="fine-tuning steps a row")
    c.add_argument("--lr", type=float, default=L["lr"])
    c.add_argument("--lora", action="store_true", help="train LoRA adapters (peft)")
    c.add_argument("--lora-rank", type=int, default=L["lora_rank"])
    c.add_argument("--timing-steps", type=int, default=L["timing_steps"],
                   help="steps timed for HTAF / original (0: skip)")  # fmt: skip
    c.add_argument("--pretrain-steps", type=int, default=L["pretrain_steps"],
                   help="tiny-llama: steps from scratch")  # fmt: skip
    c.add_argument("--seed", type=int, default=L["seed"])
    c.add_argument("--device", default=L["device"], help="cpu, cuda, cuda:N (default: cpu)")
    c.add_argument("--data-dir", default=L["data_dir"],
                   help="where WikiText-2 raw, OpenBookQA, WinoGrande are looked for")  # fmt: skip
    c.add_argument("--max-items", type=int, default=L["max_items"], help="items a benchmark")
    c.add_argument("--cache", default=L["cache"], help="where the packaged model is extracted")
    c.add_argument("--threads", type=int, default=L["threads"], help="torch threads")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=run_llm)


def run_llm(args: argparse.Namespace) -> int:
    from htaf.config import ConfigError
    from htaf.studies import llm

    ks = None
    if args.ks is not None:
        try:
            ks = [int(x) for x in _names(args.ks)]
        except ValueError:
            raise ConfigError(f"--ks must be comma-separated integers, got {args.ks!r}") from None
    result = llm.run(
        args.out,
        model=args.model,
        tokenizer=args.tokenizer,
        estimators=_names(args.estimators),
        ks=ks,
        order=args.order,
        n_train=args.n_train,
        n_test=args.n_test,
        max_length=args.max_length,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        lora=args.lora,
        lora_rank=args.lora_rank,
        timing_steps=args.timing_steps,
        pretrain_steps=args.pretrain_steps,
        seed=args.seed,
        device=args.device,
        data_dir=args.data_dir,
        max_items=args.max_items,
        cache=args.cache,
        threads=args.threads,
        progress=not args.no_progress,
    )
    # the table already ends with the claim's line
    return _print_result(result, None, f"{args.out}/results.json")

"""``htaf concepts RUN``: the concept analysis of one ICBM run (figures, tables, a report page).

    htaf concepts htaf-runs/compare-.../shapes/htaf/seed0
    htaf concepts RUN --node 5 --image 17          # concept 5's images; test image 17
    HTAF_LLM_API_KEY=... htaf concepts RUN --llm http://127.0.0.1:8000 --model llama3

Writes RUN/concepts/ (see ``htaf.analysis.concepts``) and refreshes the experiment's report,
which links the page. The naming prompts are always written; with ``--llm URL --model NAME``
they are sent to that OpenAI-compatible chat endpoint. The API key is read from the
environment (HTAF_LLM_API_KEY, else OPENAI_API_KEY) and never printed or stored.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "concepts",
        help="analyse the concepts of an ICBM run: proportions, images, ablation, alignment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help="a run folder, e.g. EXP_DIR/shapes/htaf/seed0")
    p.add_argument("--node", type=int, default=None, help="the concept to show images and "
                   "interventions for (default: the most class-specific one)")  # fmt: skip
    p.add_argument("--image", type=int, default=None, help="test image whose active concepts "
                   "to show (default: the first the binary model misclassifies)")  # fmt: skip
    p.add_argument("--top", type=int, default=8, help="images per row of the node grid")
    p.add_argument("--llm", default=None, metavar="URL", help="OpenAI-compatible endpoint that "
                   "names the concepts (e.g. http://127.0.0.1:8000)")  # fmt: skip
    p.add_argument("--model", default=None, metavar="NAME", help="the model the endpoint serves")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.analysis.concepts import OUT, analyze_run, summary_lines

    s = analyze_run(args.run, node=args.node, image=args.image, llm=args.llm,
                    llm_model=args.model, top=args.top)  # fmt: skip
    print(f"{s['estimator']} on {s['dataset']} (seed {s['seed']}), {s['n_images']} test images, "
          f"{s['n_concepts']} concepts")  # fmt: skip
    lines = summary_lines(s)
    width = max(len(a) for a, _ in lines)
    for a, b in lines:
        print(f"  {a.ljust(width)}  {b}")
    for node, name in s["names"].items():
        print(f"  concept {node}: {name}")
    print(f"page: {args.run.rstrip('/')}/{OUT}/concepts.html")
    return 0

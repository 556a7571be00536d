"""FICO HELOC (binary): heloc_dataset_v1.csv from the FICO Explainable ML Challenge."""

from __future__ import annotations

import numpy as np

from .files import find_file, read_csv, require_columns
from .preprocess import Table
from .registry import Ctx, register

FILE = "heloc_dataset_v1.csv"
PAGE = "https://community.fico.com/s/explainable-machine-learning-challenge"
NOTE = (
    f"HELOC cannot be downloaded automatically (FICO licence; download=True does not help): "
    f"request the file at {PAGE} and place {FILE!r} in one of those directories."
)
TARGET = "RiskPerformance"
FEATURES = [
    "ExternalRiskEstimate", "MSinceOldestTradeOpen", "MSinceMostRecentTradeOpen",
    "AverageMInFile", "NumSatisfactoryTrades", "NumTrades60Ever2DerogPubRec",
    "NumTrades90Ever2DerogPubRec", "PercentTradesNeverDelq", "MSinceMostRecentDelq",
    "MaxDelq2PublicRecLast12M", "MaxDelqEver", "NumTotalTrades", "NumTradesOpeninLast12M",
    "PercentInstallTrades", "MSinceMostRecentInqexcl7days", "NumInqLast6M",
    "NumInqLast6Mexcl7days", "NetFractionRevolvingBurden", "NetFractionInstallBurden",
    "NumRevolvingTradesWBalance", "NumInstallTradesWBalance",
    "NumBank2NatlTradesWHighUtilization", "PercentTradesWBalance",
]  # fmt: skip
SPECIAL = (-9.0, -8.0, -7.0)


@register(
    "heloc",
    task="binary",
    description="FICO HELOC credit risk, ~10k x 23 (+ special-value indicators), Bad = 1",
    source=PAGE,
    files=(FILE,),
)
def heloc(ctx: Ctx) -> Table:
    """Special values: -9 = no bureau record; -8 = no usable/valid trades; -7 = condition
    not met. Rows where every feature is -9 carry no information and are dropped (count in
    meta). Remaining -7/-8 (and isolated -9) cells are treated as "missing with a meaning":
    they are imputed with the feature's train median, and a 0/1 column ``<feature>_missing``
    is added for every feature that has any, so the model still sees that the value was
    special."""
    path = find_file("heloc", (FILE,), ctx.data_dir, download=False, note=NOTE)
    header, cols = read_csv(path, delimiter=",")
    require_columns(path, header, [TARGET, *FEATURES])
    t = Table.from_columns(
        path, header, cols, TARGET, task="binary", classes=["Good", "Bad"], meta={"source": PAGE}
    )
    t.require_numeric(FEATURES)
    X = np.stack([t.features[c] for c in FEATURES], axis=1)
    no_record = np.all(X == -9, axis=1)
    t = t.take(~no_record)
    t.meta["rows_dropped"] = {"no bureau record (all features -9)": int(no_record.sum())}
    indicators = {}
    for c in FEATURES:
        special = np.isin(t.features[c], SPECIAL)
        if special.any():
            t.features[c] = np.where(special, np.nan, t.features[c])
            t.special[c] = special
            indicators[f"{c}_missing"] = special.astype(np.float64)
    t.features.update(indicators)
    t.meta["special_value_indicators"] = list(indicators)
    return t

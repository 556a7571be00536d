"""IBM Telco customer churn (binary): WA_Fn-UseC_-Telco-Customer-Churn.csv."""

from __future__ import annotations

from .files import find_file, is_number, read_csv, require_columns
from .preprocess import Table
from .registry import Ctx, register

FILES = ("WA_Fn-UseC_-Telco-Customer-Churn.csv", "Telco-Customer-Churn.csv")
URL = (
    "https://raw.githubusercontent.com/IBM/telco-customer-churn-on-icp4d/master/data/"
    "Telco-Customer-Churn.csv"
)
COLUMNS = [
    "customerID", "gender", "SeniorCitizen", "Partner", "Dependents", "tenure", "PhoneService",
    "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection",
    "TechSupport", "StreamingTV", "StreamingMovies", "Contract", "PaperlessBilling",
    "PaymentMethod", "MonthlyCharges", "TotalCharges", "Churn",
]  # fmt: skip
NUMERIC = ("SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges")


@register(
    "telco_churn",
    task="binary",
    description="IBM Telco customer churn, 7043 x 19 (Churn Yes = 1)",
    source=URL,
    files=FILES,
)
def telco_churn(ctx: Ctx) -> Table:
    """customerID is dropped (an ID). TotalCharges is blank (" ") for customers with tenure 0,
    who have not been billed yet: those cells become 0.0 (count in meta); other blanks stay
    missing values."""
    path = find_file("telco_churn", FILES, ctx.data_dir, ctx.download, URL)
    header, cols = read_csv(path, delimiter=",")
    require_columns(path, header, COLUMNS)
    tenure, total = cols[header.index("tenure")], cols[header.index("TotalCharges")]
    n_zero = 0
    for i, (months, charges) in enumerate(zip(tenure, total, strict=True)):
        if not charges.strip() and is_number(months) and float(months) == 0:
            total[i], n_zero = "0", n_zero + 1
    meta = {"source": URL, "total_charges_blank_to_zero": n_zero}
    t = Table.from_columns(
        path,
        header,
        cols,
        "Churn",
        drop=("customerID",),
        task="binary",
        classes=["No", "Yes"],
        meta=meta,
    )
    t.require_numeric(NUMERIC)
    return t

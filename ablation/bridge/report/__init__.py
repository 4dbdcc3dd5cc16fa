"""The bridge study's report: runs and ablation tables, the claims matrix decided from evidence,
the inference benchmark, expected vs observed, figures and ``results/bridge/RESULTS.md``.

Built from the run summaries (trained, reused or imported from the original code) and the
inference benchmark's summary, whichever of them exist; table and figure writing is shared with
the prefill-mask report (``ablation.prefill.report.tables``, ``ablation.prefill.report.figures``).
"""

from ablation.bridge.report.build import build_bridge_report
from ablation.bridge.report.claims import CLAIMS, VERDICTS, Claim, Part, evaluate_claims
from ablation.bridge.report.study import BridgeRun, BridgeStudy, load_bridge_study

__all__ = [
    "CLAIMS",
    "VERDICTS",
    "BridgeRun",
    "BridgeStudy",
    "Claim",
    "Part",
    "build_bridge_report",
    "evaluate_claims",
    "load_bridge_study",
]

"""The verdict policy: engine statistics in, MALICIOUS / SUSPICIOUS / UNKNOWN / CLEAN out.

Pure. The thresholds come from config (``[verdict]``) and default to the seed's
policy: MALICIOUS at >= 3 malicious engines, SUSPICIOUS at >= 1 malicious or
suspicious, UNKNOWN when fewer than 10 engines answered or the object is not
known, CLEAN otherwise. Every verdict comes with a one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass

# Categories in which an engine gave an opinion; timeout, failure and
# type-unsupported are engines that did not answer.
ANSWERED = ("harmless", "malicious", "suspicious", "undetected")


@dataclass(frozen=True)
class Policy:
    malicious: int = 3
    suspicious: int = 1
    min_engines: int = 10

    def judge(self, stats: dict | None, found: bool = True) -> tuple[str, str]:
        """``(verdict, reason)`` for one object's ``last_analysis_stats``."""
        if not found:
            return "UNKNOWN", "not found on VirusTotal"
        stats = stats if isinstance(stats, dict) else {}
        mal = _count(stats, "malicious")
        sus = _count(stats, "suspicious")
        answered = sum(_count(stats, k) for k in ANSWERED)
        ratio = f"{mal}/{answered} engines flag it malicious"
        if mal >= self.malicious:
            return "MALICIOUS", ratio
        if mal + sus >= self.suspicious and mal + sus > 0:
            return "SUSPICIOUS", f"{ratio}, {sus} suspicious"
        if answered < self.min_engines:
            return "UNKNOWN", f"only {answered} engines answered (fewer than {self.min_engines})"
        return "CLEAN", ratio


def _count(stats: dict, key: str) -> int:
    value = stats.get(key, 0)
    return value if isinstance(value, int) and value > 0 else 0

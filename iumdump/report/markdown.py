"""report.md: the report as a Markdown document to paste into a case or ticket.

Sections: identification of the evidence and the analysis, findings by severity, the page
accounting of each secure process, then the process tables. The document is the template
``templates/report.md.j2``; every string from the dump goes through its ``|md`` filter
(:func:`.text.markdown`).
"""

from __future__ import annotations

from .model import Report
from .templating import markdown_environment

TEMPLATE = "report.md.j2"


def render(report: Report) -> str:
    return markdown_environment().get_template(TEMPLATE).render(report=report)

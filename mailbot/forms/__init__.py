"""Statistics forms (统计表) sent back by units: template files, value cleaning, reading a file.

Pure core: bytes × templates → FormResult; the only outside call is LibreOffice, in a temp
dir, for the old binary formats. No database, no mail.
"""

from mailbot.forms.office import sniff_format
from mailbot.forms.reading import read_form
from mailbot.forms.result import FormError, FormResult, FormRow
from mailbot.forms.templates import (
    Column,
    FormTemplate,
    TemplateError,
    find_template,
    load_templates,
    parse_template,
)
from mailbot.forms.values import chinese_integer, normalise

__all__ = [
    "Column", "FormError", "FormResult", "FormRow", "FormTemplate", "TemplateError", "chinese_integer", "find_template",
    "load_templates", "normalise", "parse_template", "read_form", "sniff_format",
]

"""Templates seeded on startup (version 1, only when the key and language do not exist yet).

Standard service phrasing (CC-4) in Chinese and English. Admins change them over HTTP; a change
makes a new version, and the seed never overwrites what an admin wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import Category


@dataclass(frozen=True)
class SeedTemplate:
    key: str
    language: str
    category: Category
    subject: str
    body: str
    required_variables: tuple[str, ...]


SEEDS: tuple[SeedTemplate, ...] = (
    # Complaint steps carry the case number (``case_number``, TS-2026-000123) when the case has one, and the
    # acknowledgement the customer's status link (``status_link``); both are optional variables (empty
    # when absent, e.g. for a case older than numbers), so the texts test them. ``complaint_id`` stays as
    # the reference. Blocks start after a newline and end before one: ``trim_blocks`` eats the newline
    # that follows a block tag.
    SeedTemplate("complaint_acknowledged", "zh", Category.service, "您的投诉已受理（编号 {{ case_number or complaint_id }}）",
                 "尊敬的{{ name }}：\n\n我们已收到并受理您的投诉（{% if case_number %}编号 {{ case_number }}，{% endif %}"
                 "参考号 {{ complaint_id }}）。专人将跟进处理，并在3个工作日内给出初步意见。\n\n"
                 "{% if status_link %}您可随时查看处理进度：{{ status_link }}\n\n{% endif %}感谢您的反馈。",
                 ("complaint_id",)),
    SeedTemplate("complaint_acknowledged", "en", Category.service,
                 "We have received your complaint ({{ case_number or complaint_id }})",
                 "Dear {{ name }},\n\nWe have received your complaint ({% if case_number %}case number {{ case_number }}, "
                 "{% endif %}reference {{ complaint_id }}). A named member of staff now owns it and you will hear our "
                 "preliminary opinion within 3 working days.\n\n"
                 "{% if status_link %}You can follow its progress at any time: {{ status_link }}\n\n{% endif %}"
                 "Thank you for telling us.", ("complaint_id",)),
    SeedTemplate("complaint_preliminary_opinion", "zh", Category.service,
                 "投诉处理进展（编号 {{ case_number or complaint_id }}）",
                 "尊敬的{{ name }}：\n\n关于您的投诉（编号 {{ case_number or complaint_id }}），我们已给出初步意见，"
                 "负责人将与您联系说明。", ("complaint_id",)),
    SeedTemplate("complaint_preliminary_opinion", "en", Category.service,
                 "Update on your complaint ({{ case_number or complaint_id }})",
                 "Dear {{ name }},\n\nWe have reached a preliminary opinion on your complaint "
                 "({{ case_number or complaint_id }}). The member of staff handling it will contact you to explain.",
                 ("complaint_id",)),
    SeedTemplate("complaint_resolved", "zh", Category.service, "您的投诉已处理完毕（编号 {{ case_number or complaint_id }}）",
                 "尊敬的{{ name }}：\n\n您的投诉（编号 {{ case_number or complaint_id }}）已处理完毕。\n"
                 "处理结果：{{ resolution }}\n"
                 "{% if compensation %}补偿：{{ compensation }}\n{% endif %}\n\n如有疑问，请随时联系我们。",
                 ("complaint_id", "resolution", "compensation")),
    SeedTemplate("complaint_resolved", "en", Category.service,
                 "Your complaint has been resolved ({{ case_number or complaint_id }})",
                 "Dear {{ name }},\n\nYour complaint ({{ case_number or complaint_id }}) has been resolved.\n"
                 "Outcome: {{ resolution }}\n{% if compensation %}Compensation: {{ compensation }}\n{% endif %}\n\n"
                 "If anything is unclear, please contact us.", ("complaint_id", "resolution", "compensation")),
    SeedTemplate("complaint_reopened", "zh", Category.service, "您的投诉已重新受理（编号 {{ case_number or complaint_id }}）",
                 "尊敬的{{ name }}：\n\n应您的要求，投诉（编号 {{ case_number or complaint_id }}）已重新受理，我们会尽快跟进。",
                 ("complaint_id",)),
    SeedTemplate("complaint_reopened", "en", Category.service,
                 "Your complaint has been reopened ({{ case_number or complaint_id }})",
                 "Dear {{ name }},\n\nAs you asked, your complaint ({{ case_number or complaint_id }}) has been reopened. "
                 "We will follow it up promptly.", ("complaint_id",)),
    SeedTemplate("survey_invitation", "zh", Category.survey, "邀请您评价我们的服务",
                 "尊敬的{{ name }}：\n\n请花一分钟评价我们的服务：{{ link }}\n链接有效期至 {{ expires_at }}。",
                 ("link", "expires_at")),
    SeedTemplate("survey_invitation", "en", Category.survey, "How did we do?",
                 "Dear {{ name }},\n\nPlease take a minute to rate our service: {{ link }}\n"
                 "The link is valid until {{ expires_at }}.", ("link", "expires_at")),
    SeedTemplate("care_birthday", "zh", Category.care, "生日快乐！",
                 "尊敬的{{ name }}：\n\n祝您生日快乐，万事如意！", ()),
    SeedTemplate("care_birthday", "en", Category.care, "Happy birthday!",
                 "Dear {{ name }},\n\nEveryone here wishes you a very happy birthday.", ()),
    SeedTemplate("care_revisit", "zh", Category.care, "客户回访",
                 "尊敬的{{ name }}：\n\n我们希望了解您近期的使用体验，专属顾问将与您联系。", ()),
    SeedTemplate("care_revisit", "en", Category.care, "How are things going?",
                 "Dear {{ name }},\n\nWe would like to hear how things are going; your account manager will be in touch.", ()),
    SeedTemplate("care_profile_update", "zh", Category.care, "请核对您的资料",
                 "尊敬的{{ name }}：\n\n为了更好地为您服务，请核对并更新您的联系资料。", ()),
    SeedTemplate("care_profile_update", "en", Category.care, "Please check your details",
                 "Dear {{ name }},\n\nTo keep serving you well, please check that your contact details are up to date.", ()),
    SeedTemplate("care_winback", "zh", Category.marketing, "好久不见",
                 "尊敬的{{ name }}：\n\n好久不见，我们为您准备了专属优惠，期待再次为您服务。", ()),
    SeedTemplate("care_winback", "en", Category.marketing, "We miss you",
                 "Dear {{ name }},\n\nIt has been a while. We have prepared an offer just for you.", ()),
)

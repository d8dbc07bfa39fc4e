"""The directory CSV of the import benchmark: a realistic tree of agencies
(ministries, directorates, entities, governorates) and their employees, made
from a seed, and the rows a baseline inserts. Builds bytes only; no timing.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass

COLUMNS = (
    "type", "code", "name_en", "name_ar", "kind", "domain", "parent",
    "address", "agency", "role", "clearance",
)  # fmt: skip

MINISTRIES = (
    ("MOH", "moh", "Ministry of Health", "وزارة الصحة"),
    ("MOE", "moe", "Ministry of Education", "وزارة التربية"),
    ("MOHE", "mohe", "Ministry of Higher Education", "وزارة التعليم العالي"),
    ("MOF", "mof", "Ministry of Finance", "وزارة المالية"),
    ("MOI", "moi", "Ministry of Interior", "وزارة الداخلية"),
    ("MOFA", "mofa", "Ministry of Foreign Affairs", "وزارة الخارجية"),
    ("MOJ", "moj", "Ministry of Justice", "وزارة العدل"),
    ("MOD", "mod", "Ministry of Defence", "وزارة الدفاع"),
    ("MOP", "mop", "Ministry of Planning", "وزارة التخطيط"),
    ("MOO", "moo", "Ministry of Oil", "وزارة النفط"),
    ("MOEL", "moel", "Ministry of Electricity", "وزارة الكهرباء"),
    ("MOWR", "mowr", "Ministry of Water Resources", "وزارة الموارد المائية"),
    ("MOA", "moa", "Ministry of Agriculture", "وزارة الزراعة"),
    ("MOT", "mot", "Ministry of Trade", "وزارة التجارة"),
    ("MOIN", "moin", "Ministry of Industry and Minerals", "وزارة الصناعة والمعادن"),
    ("MOTR", "motr", "Ministry of Transport", "وزارة النقل"),
    ("MOC", "moc", "Ministry of Communications", "وزارة الاتصالات"),
    ("MOCH", "moch", "Ministry of Construction and Housing", "وزارة الإعمار والإسكان"),
    ("MOLSA", "molsa", "Ministry of Labour and Social Affairs", "وزارة العمل والشؤون الاجتماعية"),
    ("MOCU", "mocu", "Ministry of Culture", "وزارة الثقافة"),
    ("MOYS", "moys", "Ministry of Youth and Sports", "وزارة الشباب والرياضة"),
    ("MOEN", "moen", "Ministry of Environment", "وزارة البيئة"),
    ("MOMD", "momd", "Ministry of Migration and Displaced", "وزارة الهجرة والمهجرين"),
    ("MOST", "most", "Ministry of Science and Technology", "وزارة العلوم والتكنولوجيا"),
)
ENTITIES = (
    ("CBANK", "cbank", "Central Bank", "البنك المركزي"),
    ("COSIT", "cosit", "Central Statistics Organisation", "الجهاز المركزي للإحصاء"),
    ("FBSA", "fbsa", "Federal Board of Supreme Audit", "ديوان الرقابة المالية الاتحادي"),
    ("COI", "coi", "Commission of Integrity", "هيئة النزاهة"),
    ("IHEC", "ihec", "Electoral Commission", "المفوضية العليا للانتخابات"),
    ("NIC", "nic", "National Investment Commission", "الهيئة الوطنية للاستثمار"),
)
GOVERNORATES = (
    ("BGD", "Baghdad", "بغداد"), ("BSR", "Basra", "البصرة"), ("NIN", "Nineveh", "نينوى"),
    ("ANB", "Anbar", "الأنبار"), ("BBL", "Babil", "بابل"), ("KRB", "Karbala", "كربلاء"),
    ("NJF", "Najaf", "النجف"), ("DIY", "Diyala", "ديالى"), ("WST", "Wasit", "واسط"),
    ("DQR", "Dhi Qar", "ذي قار"), ("MYS", "Maysan", "ميسان"), ("MTH", "Muthanna", "المثنى"),
    ("QDS", "Qadisiyah", "القادسية"), ("SAL", "Salah al-Din", "صلاح الدين"),
    ("KRK", "Kirkuk", "كركوك"),
)  # fmt: skip
FUNCTIONS = (
    ("Administration", "الإدارة", "admin"), ("Finance", "المالية", "finance"),
    ("Human Resources", "الموارد البشرية", "hr"), ("Legal Affairs", "الشؤون القانونية", "legal"),
    ("Planning", "التخطيط", "planning"), ("Information Technology", "تقنية المعلومات", "it"),
    ("Procurement", "المشتريات", "procurement"), ("Inspection", "التفتيش", "inspection"),
    ("Audit", "التدقيق", "audit"), ("Statistics", "الإحصاء", "stats"),
    ("Public Relations", "العلاقات العامة", "pr"), ("Training", "التدريب", "training"),
)  # fmt: skip
FIRST_NAMES = (
    ("Ahmed", "أحمد"), ("Mohammed", "محمد"), ("Ali", "علي"), ("Hussein", "حسين"),
    ("Omar", "عمر"), ("Khalid", "خالد"), ("Yousif", "يوسف"), ("Karim", "كريم"),
    ("Mustafa", "مصطفى"), ("Hassan", "حسن"), ("Fatima", "فاطمة"), ("Zainab", "زينب"),
    ("Maryam", "مريم"), ("Noor", "نور"), ("Sara", "سارة"), ("Huda", "هدى"),
    ("Layla", "ليلى"), ("Rana", "رنا"), ("Aya", "آية"), ("Dalia", "داليا"),
)  # fmt: skip
LAST_NAMES = (
    ("Al-Jaburi", "الجبوري"), ("Al-Tamimi", "التميمي"), ("Al-Obaidi", "العبيدي"),
    ("Al-Saadi", "الساعدي"), ("Al-Khafaji", "الخفاجي"), ("Al-Dulaimi", "الدليمي"),
    ("Al-Rubaie", "الربيعي"), ("Al-Hashimi", "الهاشمي"), ("Al-Zubaidi", "الزبيدي"),
    ("Al-Shammari", "الشمري"), ("Al-Musawi", "الموسوي"), ("Al-Bayati", "البياتي"),
    ("Al-Azzawi", "العزاوي"), ("Al-Janabi", "الجنابي"), ("Al-Kubaisi", "الكبيسي"),
)  # fmt: skip
ROLES = (("staff", 70), ("clerk", 12), ("registrar", 8), ("director", 6), ("manager", 4))
CLEARANCES = (("internal", 70), ("public", 10), ("confidential", 15), ("secret", 5))


@dataclass(frozen=True)
class AgencyRow:
    code: str
    name_en: str
    name_ar: str
    kind: str
    domain: str
    parent: str
    weight: int  # relative staff size


# ---------------------------------------------------------------- the CSV


def _tree_shape(total: int) -> tuple[int, int]:
    """(roots, directorates) for `total` agencies: ~4 % roots, a third directorates."""
    roots = max(1, min(len(MINISTRIES) + len(ENTITIES) + len(GOVERNORATES) * 8, total * 4 // 100))
    directorates = max(0, (total - roots) // 3)
    return roots, directorates


def build_agencies(total: int, rng: random.Random) -> list[AgencyRow]:
    """A tree: ministries, entities, governorates; directorates; branches."""
    roots_wanted, directorates_wanted = _tree_shape(total)
    roots: list[AgencyRow] = []
    for code, label, en, ar in MINISTRIES:
        roots.append(AgencyRow(code, en, ar, "ministry", f"{label}.gov.example", "", 12))
    for code, label, en, ar in ENTITIES:
        roots.append(AgencyRow(code, en, ar, "entity", f"{label}.gov.example", "", 8))
    for code, en, ar in GOVERNORATES:
        roots.append(
            AgencyRow(
                f"G{code}", f"{en} Governorate", f"محافظة {ar}", "governorate",
                f"{code.lower()}.gov.example", "", 10,
            )
        )  # fmt: skip
    extra = 0
    while len(roots) < roots_wanted:  # more roots than the named ones: numbered entities
        extra += 1
        roots.append(
            AgencyRow(
                f"ENT{extra:03d}", f"Public Entity {extra}", f"الهيئة العامة {extra}", "entity",
                f"ent{extra:03d}.gov.example", "", 6,
            )
        )  # fmt: skip
    roots = roots[:roots_wanted]
    agencies = list(roots)
    directorates: list[AgencyRow] = []
    for n in range(directorates_wanted):
        parent = roots[n % len(roots)]
        index = n // len(roots)
        en, ar, label = FUNCTIONS[index % len(FUNCTIONS)]
        round_ = index // len(FUNCTIONS)
        suffix_en = f" {round_ + 1}" if round_ else ""
        suffix_ar = f" {round_ + 1}" if round_ else ""
        # About a third of directorates run their own subdomain; the rest share the parent's.
        own = rng.random() < 0.35
        domain = f"{label}{round_ or ''}.{parent.domain}" if own else parent.domain
        row = AgencyRow(
            f"{parent.code}-D{index:02d}",
            f"{parent.name_en}: Directorate of {en}{suffix_en}",
            f"مديرية {ar}{suffix_ar} - {parent.name_ar}",
            "directorate",
            domain,
            parent.code,
            4,
        )
        directorates.append(row)
    agencies += directorates
    branches_wanted = total - len(agencies)
    for n in range(branches_wanted):
        parent = directorates[n % len(directorates)] if directorates else roots[n % len(roots)]
        index = n // (len(directorates) or len(roots))
        city_en, city_ar = GOVERNORATES[(n + index) % len(GOVERNORATES)][1:]
        agencies.append(
            AgencyRow(
                f"{parent.code}-B{index:02d}",
                f"{parent.name_en}, {city_en} Branch",
                f"{parent.name_ar}، فرع {city_ar}",
                "branch",
                parent.domain,
                parent.code,
                1,
            )
        )
    return agencies


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def build_csv(agencies_wanted: int, employees_wanted: int, seed: int) -> tuple[bytes, int, int]:
    """The CSV file's bytes, with the number of agency and employee rows."""
    rng = random.Random(seed)
    agencies = build_agencies(agencies_wanted, rng)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    order = list(agencies)
    rng.shuffle(order)  # the importer orders parents first; do not make it easy
    for a in order:
        writer.writerow(["agency", a.code, a.name_en, a.name_ar, a.kind, a.domain, a.parent,
                         "", "", "", ""])  # fmt: skip
    # Staff: every agency gets at least one person, the rest spread by weight.
    owners = list(agencies[:employees_wanted])
    if employees_wanted > len(owners):
        owners += rng.choices(
            agencies, [a.weight for a in agencies], k=employees_wanted - len(owners)
        )
    taken: set[str] = set()
    for n, agency in enumerate(owners, start=1):
        first_en, first_ar = rng.choice(FIRST_NAMES)
        last_en, last_ar = rng.choice(LAST_NAMES)
        local = f"{first_en}.{last_en}".lower().replace("-", "")
        address = f"{local}@{agency.domain}"
        if address in taken:
            address = f"{local}.{n}@{agency.domain}"
        taken.add(address)
        writer.writerow([
            "employee", "", f"{first_en} {last_en}", f"{first_ar} {last_ar}", "", "", "",
            address, agency.code, _pick(rng, ROLES), _pick(rng, CLEARANCES),
        ])  # fmt: skip
    return out.getvalue().encode("utf-8"), len(agencies), len(owners)


def csv_records(data: bytes) -> list[tuple[str, ...]]:
    """The data rows of the CSV as tuples (the baselines insert exactly these)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    next(reader)
    return [tuple(r) for r in reader]



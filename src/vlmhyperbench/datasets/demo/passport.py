"""Page of a Russian internal passport: issuing office above, personal data and photo below."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from vlmhyperbench.datasets.demo.document import DocField
from vlmhyperbench.datasets.demo.layout import Cell, Page, PageBuilder, Polyline, Rect, TextStyle
from vlmhyperbench.datasets.demo.styles import LABEL, VALUE
from vlmhyperbench.datasets.demo.values import (
    REFERENCE_DATE,
    REGIONS,
    Person,
    Region,
    add_years,
    format_date,
    random_date,
    random_person,
)

BACKGROUND = (247, 238, 233)
WAVE = (236, 218, 212)
WAVE_DARK = (196, 170, 164)
BAND = (140, 32, 42)
PHOTO = (214, 208, 204)
PHOTO_INK = (160, 150, 146)
HEADER = TextStyle(17, bold=True, color=(255, 255, 255))
NUMBER = TextStyle(18, bold=True, color=(185, 30, 30))

REPLACEMENT_AGES = (14, 20, 45)  # a passport is issued at 14 and replaced at 20 and 45
UFMS_ABOLISHED = 2016  # offices were renamed from УФМС to МВД that year


@dataclass(frozen=True)
class PassportData:
    person: Person
    number: str  # "45 12 345678"
    issue_date: date
    department_code: str  # "770-001"
    issued_by: str


def passport_data(rng: random.Random) -> PassportData:
    person = random_person(rng)
    region = rng.choice(REGIONS)
    issue_date = _issue_date(rng, person.birth_date)
    return PassportData(
        person=person,
        number=f"{region.okato} {issue_date.year % 100:02d} {rng.randint(100_000, 999_999)}",
        issue_date=issue_date,
        department_code=f"{region.subject}0-{rng.randint(1, 99):03d}",
        issued_by=_issuing_office(region, issue_date).upper(),
    )


def _issue_date(rng: random.Random, birth: date) -> date:
    """Issued within 60 days after the latest birthday at which a passport was due."""
    latest = max(
        d for d in (add_years(birth, age) for age in REPLACEMENT_AGES) if d < REFERENCE_DATE
    )
    return random_date(rng, latest, min(latest + timedelta(days=60), REFERENCE_DATE))


def _issuing_office(region: Region, issued: date) -> str:
    prefix = "Отделом УФМС России по" if issued.year < UFMS_ABOLISHED else "ГУ МВД России по"
    return f"{prefix} {region.dative}"


def passport_fields(data: PassportData) -> tuple[DocField, ...]:
    person = data.person
    return (
        DocField("surname", "Фамилия", person.surname.upper(), "Какая фамилия указана в паспорте?"),
        DocField("given_name", "Имя", person.given_name.upper(), "Какое имя указано в паспорте?"),
        DocField(
            "patronymic",
            "Отчество",
            person.patronymic.upper(),
            "Какое отчество указано в паспорте?",
        ),
        DocField(
            "birth_date",
            "Дата рождения",
            format_date(person.birth_date),
            "Какая дата рождения указана в паспорте?",
        ),
        DocField("passport_number", "Серия и номер", data.number, "Какие серия и номер паспорта?"),
        DocField(
            "issue_date", "Дата выдачи", format_date(data.issue_date), "Какая дата выдачи паспорта?"
        ),
        DocField(
            "department_code",
            "Код подразделения",
            data.department_code,
            "Какой код подразделения указан в паспорте?",
        ),
    )


def layout_passport(data: PassportData, width: int) -> Page:
    b = PageBuilder(width, BACKGROUND)
    top, bottom = b.row(Cell("РОССИЙСКАЯ ФЕДЕРАЦИЯ", 320, HEADER, "center"), leading=2.0)
    b.shapes.append(Rect((0, top, width, bottom), fill=BAND))
    b.space(12)
    _issuer_block(b, data)
    b.space(8)
    b.rule(WAVE_DARK)
    b.space(14)
    _personal_block(b, data.person)
    b.space(14)
    b.row(Cell("Серия и номер", 32, LABEL), Cell(data.number, 150, NUMBER))
    height = b.height()
    b.underlay.extend(_guilloche(width, height, b.px(16), b.px(4)))
    return b.build()


def _issuer_block(b: PageBuilder, data: PassportData) -> None:
    b.field(
        "Паспорт выдан",
        data.issued_by,
        label_x=32,
        value_x=150,
        label_style=LABEL,
        value_style=VALUE,
    )
    b.row(
        Cell("Дата выдачи", 32, LABEL),
        Cell(format_date(data.issue_date), 150, VALUE),
        Cell("Код подразделения", 316, LABEL),
        Cell(data.department_code, 460, VALUE),
    )


def _personal_block(b: PageBuilder, person: Person) -> None:
    """Name, sex, birth date and place to the right of a photo placeholder."""
    top = b.y
    rows = (
        ("Фамилия", person.surname.upper()),
        ("Имя", person.given_name.upper()),
        ("Отчество", person.patronymic.upper()),
        ("Пол", "МУЖ." if person.male else "ЖЕН."),
        ("Дата рождения", format_date(person.birth_date)),
        ("Место рождения", f"ГОР. {person.birth_place.city.upper()}"),
    )
    for label, value in rows:
        b.field(
            label,
            value,
            label_x=200,
            value_x=320,
            label_style=LABEL,
            value_style=VALUE,
            leading=1.8,
        )
    photo = (b.px(40), top, b.px(176), max(b.y, top + b.px(170)))
    b.shapes.extend(_photo(photo))
    b.y = photo[3]


def _photo(box: tuple[float, float, float, float]) -> list[Rect | Polyline]:
    """A grey photo placeholder with a head-and-shoulders outline."""
    x0, y0, x1, y1 = box
    cx, w, h = (x0 + x1) / 2, x1 - x0, y1 - y0
    head_r = w * 0.2
    head_cy = y0 + h * 0.38
    head = tuple(
        (
            cx + head_r * math.cos(t / 16 * math.tau),
            head_cy + head_r * 1.2 * math.sin(t / 16 * math.tau),
        )
        for t in range(17)
    )
    shoulders = (
        (x0 + w * 0.12, y1),
        (cx - w * 0.25, y0 + h * 0.72),
        (cx + w * 0.25, y0 + h * 0.72),
        (x1 - w * 0.12, y1),
    )
    return [
        Rect(box, fill=PHOTO, outline=WAVE_DARK, width=2),
        Polyline(head, PHOTO_INK, 2),
        Polyline(shoulders, PHOTO_INK, 2),
    ]


def _guilloche(width: int, height: int, step: float, amplitude: float) -> list[Polyline]:
    """Faint wavy background lines, like the security print of a real passport page."""
    lines: list[Polyline] = []
    period = width / 9
    y = step / 2
    while y < height:
        points = tuple(
            (float(x), y + amplitude * math.sin((x + y * 1.7) / period * math.tau))
            for x in range(0, width + 8, 8)
        )
        lines.append(Polyline(points, WAVE, 1))
        y += step
    return lines


def build_passport(rng: random.Random, width: int) -> tuple[Page, tuple[DocField, ...]]:
    data = passport_data(rng)
    return layout_passport(data, width), passport_fields(data)

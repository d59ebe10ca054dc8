"""The green СНИЛС card (страховое свидетельство обязательного пенсионного страхования)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from vlmhyperbench.datasets.demo.document import DocField
from vlmhyperbench.datasets.demo.layout import Cell, Page, PageBuilder, Rect, TextStyle
from vlmhyperbench.datasets.demo.styles import INK, LABEL, VALUE
from vlmhyperbench.datasets.demo.values import (
    REFERENCE_DATE,
    Person,
    format_date,
    random_date,
    random_person,
    random_snils,
)

BACKGROUND = (219, 238, 214)
GREEN = (46, 125, 60)
TITLE = TextStyle(18, bold=True, color=GREEN)
SUBTITLE = TextStyle(13, bold=True, color=GREEN)
NUMBER = TextStyle(20, bold=True, color=INK)
FIRST_ISSUE = date(1996, 4, 1)  # individual pension accounts started in 1996
LABEL_X, VALUE_X = 48, 200


@dataclass(frozen=True)
class SnilsData:
    person: Person
    number: str  # "123-456-789 01"
    registration_date: date


def snils_data(rng: random.Random) -> SnilsData:
    person = random_person(rng)
    number = random_snils(rng)
    start = max(person.birth_date + timedelta(days=30), FIRST_ISSUE)
    return SnilsData(person, number, random_date(rng, start, REFERENCE_DATE))


def sex_word(person: Person) -> str:
    return "мужской" if person.male else "женский"


def snils_fields(data: SnilsData) -> tuple[DocField, ...]:
    person = data.person
    return (
        DocField(
            "snils_number", "Страховой номер", data.number, "Какой страховой номер указан в СНИЛС?"
        ),
        DocField("surname", "Фамилия", person.surname, "Какая фамилия указана в СНИЛС?"),
        DocField("given_name", "Имя", person.given_name, "Какое имя указано в СНИЛС?"),
        DocField("patronymic", "Отчество", person.patronymic, "Какое отчество указано в СНИЛС?"),
        DocField(
            "birth_date",
            "Дата рождения",
            format_date(person.birth_date),
            "Какая дата рождения указана в СНИЛС?",
        ),
        DocField("sex", "Пол", sex_word(person), "Какой пол указан в СНИЛС?"),
    )


def layout_snils(data: SnilsData, width: int) -> Page:
    person = data.person
    b = PageBuilder(width, BACKGROUND, margin=40)
    b.row(Cell("СТРАХОВОЕ СВИДЕТЕЛЬСТВО", 320, TITLE, "center"))
    b.row(Cell("ОБЯЗАТЕЛЬНОГО ПЕНСИОННОГО СТРАХОВАНИЯ", 320, SUBTITLE, "center"))
    b.space(12)
    b.row(Cell("Страховой номер", LABEL_X, LABEL), Cell(data.number, VALUE_X, NUMBER), leading=1.8)
    b.space(6)
    b.row(Cell("Ф.И.О.", LABEL_X, LABEL), Cell(person.surname, VALUE_X, VALUE))
    b.row(Cell(person.given_name, VALUE_X, VALUE))
    b.row(Cell(person.patronymic, VALUE_X, VALUE))
    b.space(4)
    for label, value in (
        ("Дата рождения", format_date(person.birth_date)),
        ("Место рождения", f"гор. {person.birth_place.city}"),
        ("Пол", sex_word(person)),
        ("Дата регистрации", format_date(data.registration_date)),
    ):
        b.field(
            label, value, label_x=LABEL_X, value_x=VALUE_X, label_style=LABEL, value_style=VALUE
        )
    height = b.height()
    outer, inner = b.px(10), b.px(17)
    b.underlay.extend(
        (
            Rect(
                (outer, outer, width - outer, height - outer), outline=GREEN, width=round(b.px(3))
            ),
            Rect((inner, inner, width - inner, height - inner), outline=GREEN, width=1),
        )
    )
    return b.build()


def build_snils(rng: random.Random, width: int) -> tuple[Page, tuple[DocField, ...]]:
    data = snils_data(rng)
    return layout_snils(data, width), snils_fields(data)

"""Seeded, realistic field values: people, places, dates, numbers, companies, goods.

Every function takes the document's ``random.Random`` so that one seed fixes every value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from vlmhyperbench.datasets.demo.checksums import (
    SNILS_UNCHECKED_MAX,
    format_snils,
    inn10_check_digit,
    snils_check_digits,
)

REFERENCE_DATE = date(2025, 1, 1)
"""The documents' "today": fixed, so the output never depends on the clock."""


@dataclass(frozen=True)
class Region:
    city: str
    okato: str  # first two digits of a passport series
    subject: str  # subject code: department codes and tax offices start with it
    dative: str  # "… по <dative>" in the name of the issuing office


REGIONS: tuple[Region, ...] = (
    Region("Москва", "45", "77", "г. Москве"),
    Region("Санкт-Петербург", "40", "78", "г. Санкт-Петербургу и Ленинградской обл."),
    Region("Новосибирск", "50", "54", "Новосибирской обл."),
    Region("Казань", "92", "16", "Республике Татарстан"),
    Region("Екатеринбург", "65", "66", "Свердловской обл."),
    Region("Нижний Новгород", "22", "52", "Нижегородской обл."),
    Region("Краснодар", "03", "23", "Краснодарскому краю"),
    Region("Ростов-на-Дону", "60", "61", "Ростовской обл."),
)

MALE_SURNAMES = (
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
    "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв",
    "Вишневский", "Ковальский", "Сорокин", "Белоусов", "Голубев", "Тарасов", "Ильин", "Жуков",
)  # fmt: skip
MALE_NAMES = (
    "Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья",
    "Кирилл", "Михаил", "Никита", "Матвей", "Роман", "Егор", "Иван", "Владимир", "Павел",
    "Николай", "Олег", "Виктор", "Евгений", "Игорь", "Константин", "Юрий",
)  # fmt: skip
FEMALE_NAMES = (
    "Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Екатерина",
    "Юлия", "Анастасия", "Дарья", "Ксения", "Марина", "Полина", "Виктория", "Валентина",
    "Людмила", "Галина", "Алёна", "Вера", "Надежда", "Софья", "Любовь",
)  # fmt: skip
# (male, female) patronymic pairs
PATRONYMICS: tuple[tuple[str, str], ...] = (
    ("Иванович", "Ивановна"), ("Сергеевич", "Сергеевна"), ("Алексеевич", "Алексеевна"),
    ("Андреевич", "Андреевна"), ("Дмитриевич", "Дмитриевна"), ("Николаевич", "Николаевна"),
    ("Михайлович", "Михайловна"), ("Петрович", "Петровна"), ("Владимирович", "Владимировна"),
    ("Александрович", "Александровна"), ("Павлович", "Павловна"), ("Юрьевич", "Юрьевна"),
    ("Олегович", "Олеговна"), ("Викторович", "Викторовна"), ("Евгеньевич", "Евгеньевна"),
    ("Игоревич", "Игоревна"), ("Васильевич", "Васильевна"), ("Анатольевич", "Анатольевна"),
    ("Борисович", "Борисовна"), ("Геннадьевич", "Геннадьевна"), ("Ильич", "Ильинична"),
)  # fmt: skip

COMPANY_NAMES = (
    "Вектор", "Меридиан", "Ромашка", "ТехноСнаб", "Альфа-Строй", "Северный ветер", "Гранит",
    "Полюс", "Орион", "ИнфоСервис", "СтройКомплект", "Волга-Трейд", "Лотос", "Эверест",
    "Бизнес Решения", "Кристалл", "Импульс", "Сибирские ресурсы",
)  # fmt: skip

# (name, unit, lowest price, highest price in roubles)
GOODS: tuple[tuple[str, str, int, int], ...] = (
    ("Бумага офисная А4, 500 л.", "пач.", 280, 520),
    ("Картридж лазерный", "шт.", 1900, 6800),
    ("Ручка шариковая синяя", "шт.", 15, 90),
    ("Папка-регистратор 75 мм", "шт.", 150, 420),
    ("Степлер настольный", "шт.", 250, 1300),
    ("Монитор 24 дюйма", "шт.", 9800, 23000),
    ("Клавиатура проводная", "шт.", 600, 3500),
    ("Услуги доставки", "усл.", 500, 3000),
    ("Кабель HDMI 2 м", "шт.", 250, 900),
    ("Тонер для принтера", "шт.", 700, 2400),
    ("Стул офисный", "шт.", 3500, 12000),
    ("Настройка оборудования", "час", 1200, 3500),
)


@dataclass(frozen=True)
class Person:
    surname: str
    given_name: str
    patronymic: str
    male: bool
    birth_date: date
    birth_place: Region


def feminine_surname(surname: str) -> str:
    """Иванов → Иванова, Вишневский → Вишневская."""
    if surname.endswith("ий"):
        return surname[:-2] + "ая"
    return surname + "а"


def random_person(rng: random.Random) -> Person:
    """A gender-consistent person born 1960–2004 in one of :data:`REGIONS`."""
    male = rng.random() < 0.5
    surname = rng.choice(MALE_SURNAMES)
    male_patronymic, female_patronymic = rng.choice(PATRONYMICS)
    return Person(
        surname=surname if male else feminine_surname(surname),
        given_name=rng.choice(MALE_NAMES if male else FEMALE_NAMES),
        patronymic=male_patronymic if male else female_patronymic,
        male=male,
        birth_date=random_date(rng, date(1960, 1, 1), date(2004, 12, 31)),
        birth_place=rng.choice(REGIONS),
    )


def random_date(rng: random.Random, start: date, end: date) -> date:
    """A uniform date in ``[start, end]``."""
    return start + timedelta(days=rng.randint(0, (end - start).days))


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def format_date(day: date) -> str:
    """``date(1985, 2, 1)`` → ``"01.02.1985"``."""
    return f"{day.day:02d}.{day.month:02d}.{day.year:04d}"


def format_money(kopecks: int) -> str:
    """``1234567`` → ``"12 345,67"`` (space between thousands, comma before kopecks)."""
    roubles, rest = divmod(kopecks, 100)
    return f"{roubles:,}".replace(",", " ") + f",{rest:02d}"


def random_snils(rng: random.Random) -> str:
    """A СНИЛС with valid check digits, formatted ``"123-456-789 01"``.

    Like real numbers it is above 001-001-998 and never repeats one digit three times running.
    """
    while True:
        number = f"{rng.randint(SNILS_UNCHECKED_MAX + 1, 999_999_999):09d}"
        if not any(number[i] == number[i + 1] == number[i + 2] for i in range(7)):
            return format_snils(number, snils_check_digits(number))


def random_tax_office(rng: random.Random, region: Region) -> str:
    """A 4-digit tax office code: the subject code and the inspection number."""
    return f"{region.subject}{rng.randint(1, 36):02d}"


def random_inn(rng: random.Random, tax_office: str) -> str:
    """A 10-digit organisation ИНН registered at ``tax_office``, with a valid check digit."""
    first9 = f"{tax_office}{rng.randint(0, 99_999):05d}"
    return first9 + inn10_check_digit(first9)


def random_kpp(tax_office: str) -> str:
    """КПП of an organisation at its place of registration (reason code 01, number 001)."""
    return f"{tax_office}01001"


def random_company(rng: random.Random, forms: tuple[str, ...], exclude: str = "") -> str:
    """``ООО «Вектор»``-style name, different from ``exclude``."""
    while True:
        name = f"{rng.choice(forms)} «{rng.choice(COMPANY_NAMES)}»"
        if name != exclude:
            return name

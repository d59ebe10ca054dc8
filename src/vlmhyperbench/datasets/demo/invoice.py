"""Счёт на оплату: seller and buyer with ИНН/КПП, a table of 2–4 goods, the total and VAT."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from vlmhyperbench.datasets.demo.document import DocField
from vlmhyperbench.datasets.demo.layout import Cell, Page, PageBuilder, Polyline
from vlmhyperbench.datasets.demo.styles import (
    BODY,
    BODY_BOLD,
    LABEL,
    TABLE,
    TABLE_HEADER,
    TITLE,
    VALUE,
)
from vlmhyperbench.datasets.demo.values import (
    GOODS,
    REGIONS,
    format_date,
    format_money,
    random_company,
    random_date,
    random_inn,
    random_kpp,
    random_tax_office,
)

BACKGROUND = (255, 255, 255)
VAT_PERCENT = 20
COLUMNS = ((36, "left"), (60, "left"), (420, "right"), (515, "right"), (604, "right"))
HEADER = ("№", "Наименование", "Кол-во", "Цена", "Сумма")
TOTALS_LABEL_X = 460  # right edge of "Итого:"; leaves room for "1 840 000,00"


@dataclass(frozen=True)
class InvoiceItem:
    name: str
    unit: str
    quantity: int
    price: int  # kopecks

    @property
    def amount(self) -> int:
        return self.quantity * self.price


@dataclass(frozen=True)
class InvoiceData:
    number: str
    date: date
    seller: str
    inn: str
    kpp: str
    buyer: str
    items: tuple[InvoiceItem, ...]

    @property
    def total(self) -> int:
        return sum(item.amount for item in self.items)

    @property
    def vat(self) -> int:
        """VAT included in the total, rounded half up to the kopeck."""
        return (self.total * VAT_PERCENT * 2 + (100 + VAT_PERCENT)) // ((100 + VAT_PERCENT) * 2)


def invoice_data(rng: random.Random) -> InvoiceData:
    tax_office = random_tax_office(rng, rng.choice(REGIONS))
    seller = random_company(rng, ("ООО",))
    return InvoiceData(
        number=str(rng.randint(1, 9999)),
        date=random_date(rng, date(2023, 1, 1), date(2024, 12, 31)),
        seller=seller,
        inn=random_inn(rng, tax_office),
        kpp=random_kpp(tax_office),
        buyer=random_company(rng, ("ООО", "АО"), exclude=seller),
        items=tuple(_item(rng, goods) for goods in rng.sample(GOODS, rng.randint(2, 4))),
    )


def _item(rng: random.Random, goods: tuple[str, str, int, int]) -> InvoiceItem:
    name, unit, low, high = goods
    return InvoiceItem(name, unit, rng.randint(1, 20), rng.randint(low * 100, high * 100))


def invoice_fields(data: InvoiceData) -> tuple[DocField, ...]:
    return (
        DocField("invoice_number", "Номер счёта", data.number, "Какой номер счёта?"),
        DocField("invoice_date", "Дата счёта", format_date(data.date), "Какая дата счёта?"),
        DocField("seller", "Продавец", data.seller, "Кто продавец по счёту?"),
        DocField("inn", "ИНН продавца", data.inn, "Какой ИНН продавца указан в счёте?"),
        DocField("kpp", "КПП продавца", data.kpp, "Какой КПП продавца указан в счёте?"),
        DocField("buyer", "Покупатель", data.buyer, "Кто покупатель по счёту?"),
        DocField("total", "Итого", format_money(data.total), "Какая итоговая сумма по счёту?"),
    )


def layout_invoice(data: InvoiceData, width: int) -> Page:
    b = PageBuilder(width, BACKGROUND)
    b.row(Cell(f"Счёт на оплату № {data.number} от {format_date(data.date)}", 32, TITLE))
    b.rule(width=1.5)
    b.space(8)
    b.field("Продавец:", data.seller, label_x=32, value_x=140, label_style=LABEL, value_style=VALUE)
    b.row(
        Cell("ИНН продавца", 32, LABEL),
        Cell(data.inn, 140, VALUE),
        Cell("КПП", 300, LABEL),
        Cell(data.kpp, 340, VALUE),
    )
    b.field(
        "Покупатель:", data.buyer, label_x=32, value_x=140, label_style=LABEL, value_style=VALUE
    )
    b.space(12)
    b.table(
        COLUMNS,
        HEADER,
        [_table_row(i, item) for i, item in enumerate(data.items, start=1)],
        header_style=TABLE_HEADER,
        body_style=TABLE,
    )
    b.space(6)
    total = format_money(data.total)
    b.row(Cell("Итого:", TOTALS_LABEL_X, BODY_BOLD, "right"), Cell(total, 604, VALUE, "right"))
    b.row(
        Cell(f"В том числе НДС {VAT_PERCENT}%:", TOTALS_LABEL_X, BODY, "right"),
        Cell(format_money(data.vat), 604, BODY, "right"),
    )
    b.space(8)
    b.row(Cell(f"Всего наименований {len(data.items)}, на сумму {total} руб.", 32, BODY))
    b.space(22)
    _signatures(b)
    return b.build()


def _table_row(index: int, item: InvoiceItem) -> tuple[str, ...]:
    return (
        str(index),
        item.name,
        f"{item.quantity} {item.unit}",
        format_money(item.price),
        format_money(item.amount),
    )


def _signatures(b: PageBuilder) -> None:
    """ "Руководитель" and "Бухгалтер", each followed by a line to sign on."""
    b.row(Cell("Руководитель", 32, BODY), Cell("Бухгалтер", 330, BODY))
    baseline = b.rows[-1].cells[0].baseline + b.px(2)
    for cell in b.rows[-1].cells:
        start = cell.x + b.measure(cell.text, BODY) + b.px(8)
        b.shapes.append(Polyline(((start, baseline), (start + b.px(140), baseline)), (60, 60, 60)))


def build_invoice(rng: random.Random, width: int) -> tuple[Page, tuple[DocField, ...]]:
    data = invoice_data(rng)
    return layout_invoice(data, width), invoice_fields(data)

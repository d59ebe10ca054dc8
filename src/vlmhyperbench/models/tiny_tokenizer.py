"""Offline byte-level BPE tokenizer for the tiny test models.

Trained on a small in-code corpus (Russian and English document-like text, digits, punctuation)
so that common Cyrillic and Latin words become real multi-byte merges, while the byte-level
alphabet guarantees that *any* text round-trips (no unknown tokens). Nothing is downloaded.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["CORPUS", "build_tokenizer"]

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"

CORPUS: tuple[str, ...] = (
    "Счёт-фактура № 1245 от 12 марта 2024 г. Продавец: ООО «Ромашка», ИНН 7701234567.",
    "Покупатель: АО «Вектор», КПП 770101001. Итого к оплате: 15 300,00 руб. в т.ч. НДС 20%.",
    "Паспорт гражданина Российской Федерации. Фамилия Иванов, имя Иван, отчество Иванович.",
    "Дата рождения 01.01.1990, место рождения город Москва. Выдан отделом УФМС России.",
    "Что написано на изображении? Ответь кратко. Какая сумма указана в документе?",
    "Какой номер счёта? Кто подписал договор? Найди дату и место составления документа.",
    "Водительское удостоверение, категория B, действительно до 2031 года.",
    "Банковская выписка за период с 01.02.2024 по 29.02.2024, остаток на счёте 48 210,55.",
    "Договор поставки № 17/А заключён между сторонами на следующих условиях.",
    "Адрес: 123456, г. Санкт-Петербург, Невский проспект, д. 28, кв. 5.",
    "Телефон +7 (812) 555-01-02, e-mail info@example.ru.",
    "Ты — полезный ассистент, который отвечает на вопросы по документам на русском языке.",
    "Invoice number INV-2024-0042 dated March 12, 2024. Total amount due: 1,530.00 USD.",
    "Bill to: ACME Corporation, 42 Main Street, Springfield. Payment terms: net 30 days.",
    "What is written in the image? Answer briefly. Which total is shown on the receipt?",
    "You are a helpful assistant that reads scanned documents and answers questions.",
    "Passport, surname, given names, date of birth, place of birth, date of issue, authority.",
    "The quick brown fox jumps over the lazy dog. 0123456789 +-*/=%.,:;!?()[]{}<>\"'",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. 0 1 2 3 4 5 6 7 8 9",
    "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz",
    "system user assistant System User Assistant: Ответь на вопрос. Answer the question.",
    "Ответ: 2024. Answer: yes. Ответ: нет. Итого: 100 рублей. Total: 100 dollars.",
)


def build_tokenizer(
    extra_special_tokens: list[str],
    *,
    vocab_size: int = 1024,
    eos_token: str = EOS_TOKEN,
    corpus: tuple[str, ...] = CORPUS,
) -> PreTrainedTokenizerFast:
    """Train a deterministic byte-level BPE tokenizer and wrap it for ``transformers``.

    ``extra_special_tokens`` are the architecture-specific tokens (image placeholders, chat
    markers). They get fixed ids right after the four base special tokens, so they are never
    split by BPE. ``eos_token`` must be one of the base or extra special tokens.
    """
    base_special = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN]
    special = base_special + [t for t in extra_special_tokens if t not in base_special]
    if eos_token not in special:
        raise ValueError(f"eos_token {eos_token!r} is not among the special tokens")

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the corpus so merge frequencies are not all ties (keeps training deterministic).
    backend.train_from_iterator([line for line in corpus for _ in range(2)], trainer=trainer)
    bos_id = backend.token_to_id(BOS_TOKEN)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )

    extra = [t for t in special if t not in base_special]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=eos_token,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        additional_special_tokens=extra,
        model_max_length=4096,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )

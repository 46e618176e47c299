"""A payload that is not UTF-8 read in the legacy code page it is in (``pipeline.sources.codepages``): a CSV of
addresses and numbers whose only non-ASCII text is a few names, as Excel saves it in its system's language."""

from __future__ import annotations

import pytest

from pipeline.sources.base import decode_text

NAMES = {
    "cp1251": ["Иван Петров", "Ольга Смирнова", "Дмитрий Иванов", "Анна Кузнецова", "Сергей Попов"],
    "cp1253": ["Ανδρέας Παπαδόπουλος", "Μαρία Γεωργίου", "Νίκος Οικονόμου", "Ελένη Δημητρίου", "Γιώργος Νικολάου"],
    "cp949": ["김민준", "이서연", "박지훈", "최수아", "정우진"],
    "gb18030": ["王伟", "李娜", "张敏", "刘洋", "陈静"],
    "big5": ["陳怡婷", "林志明", "黃淑芬", "張家豪", "李美玲"],
    "cp932": ["山田太郎", "佐藤花子", "鈴木一郎", "高橋健", "田中美咲"],
    "cp1256": ["محمد العلي", "فاطمة الزهراء", "أحمد حسن", "سارة خالد", "علي عمر"],
    "cp1255": ["יוסף כהן", "שרה לוי", "דוד מזרחי", "רחל פרץ", "משה ביטון"],
    "cp874": ["สมชาย ใจดี", "สมหญิง รักดี", "วิชัย สุขใจ", "มาลี ศรีสุข", "ประเสริฐ ดีมาก"],
}


def _csv(names: list[str]) -> str:
    rows = "".join(f"{name},p{i}@example.com,+1 415 555 01{i:02d}\n" for i, name in enumerate(names))
    return "Name,Email,Phone\n" + rows


@pytest.mark.parametrize("count", [3, 5])
@pytest.mark.parametrize("encoding", sorted(NAMES))
def test_names_in_another_script_are_read_in_their_code_page(encoding: str, count: int) -> None:
    """charset-normalizer's own pick read five Japanese names as Korean, Chinese ones as Big5 and Cyrillic as Thai;
    the score of each reading's everyday characters decides."""
    text = _csv(NAMES[encoding][:count])
    assert decode_text(text.encode(encoding)) == text


@pytest.mark.parametrize(
    "text",
    [
        "Name;Straße;Ort\nJürgen Müller;Hauptstraße 5;München\n",
        "Nom,Prénom,Société\nLefèvre,François,Société Générale\n",
        "Preis,Währung\n10 €,EUR\n5 £,GBP\n© 2024 ™\n",
        "Preis\n10 €; © ™ ½\n",  # a few symbols read in another code page are letters and symbols: still Western
        "Müller\n",
    ],
)
def test_western_text_stays_windows_1252(text: str) -> None:
    assert decode_text(text.encode("cp1252")) == text


def test_half_width_kana_beside_kanji_is_japanese() -> None:
    text = "氏名,フリガナ\n山田 太郎,ﾔﾏﾀﾞ ﾀﾛｳ\n"  # a furigana column in half-width katakana, as older systems export
    assert decode_text(text.encode("cp932")) == text


@pytest.mark.parametrize(
    ("text", "charset"),
    [
        ("Herzlichen Glückwunsch, Sie haben gewonnen: 50.000 €", "utf-8"),
        ("Herzlichen Glückwunsch, Sie haben gewonnen: 50.000 €", None),  # UTF-8 undeclared
        ("저희 회사에서 서버 20대에 대한 견적을 요청드립니다", "ks_c_5601-1987"),
        ("我们公司想订购十套软件\uff0c请报价", "gb2312"),
        ("新製品のご案内です", "shift_jis"),
        ("報價單請查收", "big5"),
    ],
)
@pytest.mark.parametrize("after", [b"", b"\r\n"])
def test_text_cut_mid_character_keeps_its_encoding(text: str, charset: str | None, after: bytes) -> None:
    """A bulk mailer cuts a subject or body at a byte count: the one half character made the whole text be read as
    Windows-1252 ("GlÃ¼ckwunsch"), Korean and Chinese too, which the spam rules then read."""
    encoding = {None: "utf-8", "ks_c_5601-1987": "cp949", "gb2312": "gbk"}.get(charset, charset)
    assert encoding is not None
    raw = text.encode(encoding)[:-1] + after
    assert decode_text(raw, charset) == text[:-1] + after.decode()


@pytest.mark.parametrize("raw", [b"Caf\xe9", b"Caf\xe9\n", b"Men\xfc: Cr\xe8me caf\xe9"])
def test_western_text_ending_like_a_cut_character_stays_western(raw: bytes) -> None:
    """Nothing before the cut is a character of the multi-byte encoding: it stays Windows-1252."""
    assert decode_text(raw) == raw.decode("cp1252")

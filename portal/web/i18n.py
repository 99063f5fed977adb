"""Interface text of the auditor pages: Russian, English, and a Kazakh welcome.

The language comes from ``?lang=`` (kept in the session), else the browser's
Accept-Language, else the portal's ``language`` setting (Russian by default).
Kazakh pages show the Kazakh welcome and otherwise Russian text until a full
translation is supplied.
"""

from __future__ import annotations

LANGS = ("ru", "en", "kk")
DEFAULT = "ru"

_EN = {
    "welcome": "Welcome",
    "title": "Attendance reconciliation",
    "centers": "Centers",
    "center": "Center",
    "group": "Group",
    "groups": "Groups",
    "lessons": "Lessons",
    "lesson": "Lesson",
    "child": "Child",
    "date": "Date",
    "status": "Status",
    "reasons": "Reasons",
    "price": "Price, KZT",
    "kzt_at_risk": "KZT at risk",
    "kzt_unverifiable": "KZT unverifiable",
    "share_verified": "Verified share",
    "offline_lessons": "Lessons with devices offline",
    "period": "Period",
    "from": "From",
    "to": "To",
    "show": "Show",
    "evidence": "Evidence",
    "records": "Records",
    "doors": "Door events",
    "heartbeats": "Device coverage",
    "devices": "Devices",
    "risk_queue": "Risk queue",
    "risk_intro": "Center-weeks ranked for unannounced spot checks: a ranking, not an accusation.",
    "week": "Week",
    "score": "Score",
    "risk_reasons": "Figures against the city",
    "kzt_at_stake": "KZT paid on the device's word",
    "spotchecks": "Spot checks (counted / device)",
    "device": "Device",
    "last_seen": "Last seen",
    "backlog": "Backlog (pending on device)",
    "integrity_events": "Integrity events",
    "never": "never",
    "none": "none",
    "time": "Time",
    "reader": "Reader",
    "badge": "Badge",
    "trusted": "Time trusted",
    "proven": "Time proven",
    "yes": "yes",
    "no": "no",
    "sensor": "Sensor",
    "state": "State",
    "window": "Window",
    "silences": "Silences longer than two heartbeats",
    "heartbeat_count": "Heartbeats in window",
    "record_count": "Records in window",
    "all_rows": "All lessons",
    "open": "open",
    "kind": "Kind",
    "seqs": "Seq range",
    "at": "At",
    "language": "Language",
    "lessons_total": "Child-lessons",
    "no_rows": "Nothing to show for this period.",
    "verified": "verified",
    "suspect": "suspect",
    "confirmed_without_presence": "confirmed without presence",
    "confirmed_device_offline": "confirmed, device offline",
    "present_unproven": "present, time unproven",
    "present_not_confirmed": "present, not confirmed",
    "card_burst": "card burst",
    "no_door_passage": "no door passage",
    "door_held_open": "door held open",
    "no_door_sensor": "no door sensor",
    "time_untrusted": "time untrusted",
    "stale_anchor": "stale anchor",
    "simulated_reader": "simulated reader",
    "unknown_reader": "unknown reader",
    "card_not_authenticated": "card not authenticated",
    "card_replayed": "card message replayed",
    "chain_integrity": "chain integrity",
    "device_clone_suspected": "device clone suspected",
    "double_presence": "in two places at once",
    "no_lesson_scheduled": "no lesson scheduled",
    "schedule_changed_late": "schedule changed late",
    "confirmed_early": "confirmed before the lesson ended",
    "shared_signer": "one signer for many children",
    "implausible_schedule": "implausible schedule",
}

_RU = {
    "welcome": "Добро пожаловать",
    "title": "Сверка посещаемости",
    "centers": "Центры",
    "center": "Центр",
    "group": "Группа",
    "groups": "Группы",
    "lessons": "Занятия",
    "lesson": "Занятие",
    "child": "Ребёнок",
    "date": "Дата",
    "status": "Статус",
    "reasons": "Причины",
    "price": "Цена, ₸",
    "kzt_at_risk": "Под риском, ₸",
    "kzt_unverifiable": "Не проверить, ₸",
    "share_verified": "Доля подтверждённых",
    "offline_lessons": "Занятий без связи с устройством",
    "period": "Период",
    "from": "С",
    "to": "По",
    "show": "Показать",
    "evidence": "Доказательства",
    "records": "Записи",
    "doors": "События двери",
    "heartbeats": "Связь с устройством",
    "devices": "Устройства",
    "risk_queue": "Очередь проверок",
    "risk_intro": (
        "Центры и недели по убыванию риска для внезапных проверок: это очередь, не обвинение."
    ),
    "week": "Неделя",
    "score": "Балл",
    "risk_reasons": "Показатели против города",
    "kzt_at_stake": "KZT по данным устройства",
    "spotchecks": "Проверки (насчитано / устройство)",
    "device": "Устройство",
    "last_seen": "Последняя связь",
    "backlog": "Очередь на устройстве",
    "integrity_events": "Нарушения целостности",
    "never": "никогда",
    "none": "нет",
    "time": "Время",
    "reader": "Считыватель",
    "badge": "Карта",
    "trusted": "Время достоверно",
    "proven": "Время доказано",
    "yes": "да",
    "no": "нет",
    "sensor": "Датчик",
    "state": "Состояние",
    "window": "Окно",
    "silences": "Перерывы дольше двух сигналов",
    "heartbeat_count": "Сигналов в окне",
    "record_count": "Записей в окне",
    "all_rows": "Все занятия",
    "open": "открыть",
    "kind": "Вид",
    "seqs": "Номера записей",
    "at": "Когда",
    "language": "Язык",
    "lessons_total": "Посещений",
    "no_rows": "За этот период нечего показать.",
    "verified": "подтверждено",
    "suspect": "подозрительно",
    "confirmed_without_presence": "подтверждено без присутствия",
    "confirmed_device_offline": "подтверждено, устройство без связи",
    "present_unproven": "присутствие, время не доказано",
    "present_not_confirmed": "присутствие без подтверждения",
    "card_burst": "пачка карт",
    "no_door_passage": "дверь не открывалась",
    "door_held_open": "дверь открыта слишком долго",
    "no_door_sensor": "нет датчика двери",
    "time_untrusted": "время недостоверно",
    "stale_anchor": "устаревшая квитанция",
    "simulated_reader": "имитация считывателя",
    "unknown_reader": "неизвестный считыватель",
    "card_not_authenticated": "карта не подтвердила чтение",
    "card_replayed": "повтор старого сообщения карты",
    "chain_integrity": "нарушена цепочка записей",
    "device_clone_suspected": "подозрение на клон устройства",
    "double_presence": "в двух местах одновременно",
    "no_lesson_scheduled": "занятие не запланировано",
    "schedule_changed_late": "расписание изменено задним числом",
    "confirmed_early": "подтверждено до конца занятия",
    "shared_signer": "один подписант на многих детей",
    "implausible_schedule": "неправдоподобное расписание",
}

_KK = {
    **_RU,
    "welcome": "Қош келдіңіз",
    "language": "Тіл",
    "card_not_authenticated": "карта оқуды растамады",
    "card_replayed": "картаның ескі хабары қайталанды",
}

MESSAGES = {"en": _EN, "ru": _RU, "kk": _KK}

# Headers of the report exports (portal/reconcile/report.py: XLSX, HTML).
_REPORT = {
    "en": {
        "child_id": "Child ID",
        "child_name": "Child",
        "center_id": "Center ID",
        "lesson_start": "Lesson start",
        "lesson_end": "Lesson end",
        "read_count": "Badge reads",
        "first_read": "First read",
        "confirmed_at": "Confirmed at",
        "signer": "Signer",
        "rows_not_verified": "Lessons not verified",
    },
    "ru": {
        "child_id": "ID ребёнка",
        "child_name": "Ребёнок",
        "center_id": "ID центра",
        "lesson_start": "Начало занятия",
        "lesson_end": "Конец занятия",
        "read_count": "Отметок карты",
        "first_read": "Первая отметка",
        "confirmed_at": "Подтверждено",
        "signer": "Подписант",
        "rows_not_verified": "Неподтверждённые занятия",
    },
    "kk": {
        "child_id": "Бала ID",
        "child_name": "Бала",
        "center_id": "Орталық ID",
        "lesson_start": "Сабақтың басы",
        "lesson_end": "Сабақтың соңы",
        "read_count": "Карта белгілері",
        "first_read": "Алғашқы белгі",
        "confirmed_at": "Расталған уақыты",
        "signer": "Қол қоюшы",
        "rows_not_verified": "Расталмаған сабақтар",
    },
}
for _lang, _words in _REPORT.items():
    MESSAGES[_lang].update(_words)


def pick(
    asked: str | None, session_lang: str | None, accept_language: str, default: str = DEFAULT
) -> str:
    """The language: an explicit ``?lang=``, the session's, the browser's, or ``default``."""
    for choice in (asked, session_lang):
        if choice in LANGS:
            return choice
    ranked: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in LANGS:
            ranked.append((q, base))
    ranked = [r for r in ranked if r[0] > 0]  # q=0 means "not this one"
    if not ranked:
        return default if default in LANGS else DEFAULT
    return max(ranked, key=lambda x: x[0])[1]


def translator(lang: str) -> dict[str, str]:
    return MESSAGES.get(lang, MESSAGES[DEFAULT])

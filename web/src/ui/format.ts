// Dates and durations in the user's language.

import type { Lang, Translate } from "../i18n";

const LOCALES: Record<Lang, string> = { fr: "fr-BE", nl: "nl-BE", en: "en-GB" };

export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0
    ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}`
    : `${minutes}:${seconds}`;
}

function sameDay(a: Date, b: Date): boolean {
  return (
    a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate()
  );
}

/** "Today 14:05", "Yesterday 09:12", "3 Mar 2026, 17:40". */
export function formatWhen(iso: string, lang: Lang, t: Translate, now = new Date()): string {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  const locale = LOCALES[lang];
  const time = when.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  if (sameDay(when, now)) return `${t("today")} ${time}`;
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(when, yesterday)) return `${t("yesterday")} ${time}`;
  const date = when.toLocaleDateString(locale, {
    day: "numeric",
    month: "short",
    year: when.getFullYear() === now.getFullYear() ? undefined : "numeric",
  });
  return `${date}, ${time}`;
}

/** A call's length: from its answer to its end. */
export function callLength(answeredAt: string | null, endedAt: string | null): number | null {
  if (answeredAt === null || endedAt === null) return null;
  return new Date(endedAt).getTime() - new Date(answeredAt).getTime();
}

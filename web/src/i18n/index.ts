// Languages: French, Dutch, English. The user's choice (saved in localStorage) wins; without
// one, the company's language (GET /me), else the browser's.

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { en, type Messages } from "./en";
import { fr } from "./fr";
import { nl } from "./nl";

export type Lang = "fr" | "nl" | "en";
export type Key = keyof Messages;
export type Translate = (key: Key, values?: Record<string, string | number>) => string;

export const LANGS: readonly Lang[] = ["fr", "nl", "en"];
/** Each language in itself: how a speaker finds theirs in a list. */
export const LANG_NAMES: Record<Lang, string> = {
  fr: "Français",
  nl: "Nederlands",
  en: "English",
};

const DICTIONARIES: Record<Lang, Messages> = { fr, nl, en };
const STORAGE_KEY = "nuage.lang";

export function isLang(value: unknown): value is Lang {
  return typeof value === "string" && (LANGS as readonly string[]).includes(value);
}

export function savedLang(storage: Storage = localStorage): Lang | null {
  const value = storage.getItem(STORAGE_KEY);
  return isLang(value) ? value : null;
}

/** Saves the user's choice; null goes back to the company's language. */
export function saveLang(lang: Lang | null, storage: Storage = localStorage): void {
  if (lang === null) storage.removeItem(STORAGE_KEY);
  else storage.setItem(STORAGE_KEY, lang);
}

export function browserLang(languages: readonly string[] = navigator.languages ?? []): Lang {
  for (const tag of languages) {
    const base = tag.toLowerCase().split("-")[0];
    if (isLang(base)) return base;
  }
  return "en";
}

export function resolveLang(saved: Lang | null, company: string | undefined): Lang {
  if (saved !== null) return saved;
  if (isLang(company)) return company;
  return browserLang();
}

export function translator(lang: Lang): Translate {
  const messages = DICTIONARIES[lang];
  return (key, values) => {
    const text = messages[key] ?? en[key] ?? key;
    if (!values) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
      name in values ? String(values[name]) : whole,
    );
  };
}

export interface I18n {
  lang: Lang;
  /** The saved choice; null when the company's language applies. */
  chosen: Lang | null;
  t: Translate;
  choose(lang: Lang | null): void;
}

export const I18nContext = createContext<I18n>({
  lang: "en",
  chosen: null,
  t: translator("en"),
  choose: () => undefined,
});

export function useI18n(): I18n {
  return useContext(I18nContext);
}

export function useT(): Translate {
  return useContext(I18nContext).t;
}

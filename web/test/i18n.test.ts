import { describe, expect, it } from "vitest";
import { en } from "../src/i18n/en";
import { fr } from "../src/i18n/fr";
import { nl } from "../src/i18n/nl";
import { browserLang, resolveLang, saveLang, savedLang, translator } from "../src/i18n";

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("dictionaries", () => {
  it("say every message in every language, with the same values filled in", () => {
    for (const dictionary of [fr, nl]) {
      expect(Object.keys(dictionary).sort()).toEqual(Object.keys(en).sort());
      for (const key of Object.keys(en) as (keyof typeof en)[]) {
        expect(dictionary[key].trim(), key).not.toBe("");
        expect(placeholders(dictionary[key]), key).toEqual(placeholders(en[key]));
      }
    }
  });
});

describe("language", () => {
  it("is the user's choice, else the company's, else the browser's", () => {
    expect(resolveLang("nl", "fr")).toBe("nl");
    expect(resolveLang(null, "fr")).toBe("fr");
    expect(resolveLang(null, "de")).toBe(browserLang());
    expect(browserLang(["de-DE", "nl-BE", "fr"])).toBe("nl");
    expect(browserLang(["de"])).toBe("en");
  });

  it("is saved on this device, and forgotten to go back to the company's", () => {
    saveLang("nl");
    expect(savedLang()).toBe("nl");
    saveLang(null);
    expect(savedLang()).toBeNull();
    localStorage.setItem("nuage.lang", "xx");
    expect(savedLang()).toBeNull();
  });

  it("fills in values", () => {
    const t = translator("fr");
    expect(t("status_set", { name: "En réunion" })).toBe("Votre statut est maintenant « En réunion ».");
    expect(translator("nl")("menu_new", { count: 2 })).toBe("2 nieuw");
  });
});

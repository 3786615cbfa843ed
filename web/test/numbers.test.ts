import { describe, expect, it } from "vitest";
import { callingCodeOf, callingCodeOfCountry, dialable, formatNumber, splitCountry } from "../src/numbers";

describe("dialable", () => {
  it("keeps digits, * and #, and + only first", () => {
    expect(dialable("+32 (0)2 555-01.00")).toBe("+3225550100");
    expect(dialable("02/555 01 00")).toBe("025550100");
    expect(dialable("*97 1002#")).toBe("*971002#");
    expect(dialable("1+2")).toBe("12");
    expect(dialable("tel: +33 1 23")).toBe("+33123");
  });
});

describe("formatNumber", () => {
  it("shows the company's own country's numbers in national form", () => {
    expect(formatNumber("+3225550100", "32")).toBe("02 555 01 00");
    expect(formatNumber("+32475123456", "32")).toBe("0475 12 34 56");
    expect(formatNumber("+3210123456", "32")).toBe("010 12 34 56");
    expect(formatNumber("+31201234567", "31")).toBe("020 123 4567");
    expect(formatNumber("+31612345678", "31")).toBe("06 1234 5678");
    expect(formatNumber("+33123456789", "33")).toBe("01 23 45 67 89");
  });

  it("shows other countries' numbers in international form", () => {
    expect(formatNumber("+33123456789", "32")).toBe("+33 1 23 45 67 89");
    expect(formatNumber("+3225550100", null)).toBe("+32 2 555 01 00");
    expect(formatNumber("+442071234567", "32")).toBe("+44 2071234567");
    expect(formatNumber("+14155550100", "32")).toBe("+1 4155550100");
  });

  it("formats as one types, national and international", () => {
    const typed = "0475123456";
    const steps = [...typed].map((_, i) => formatNumber(typed.slice(0, i + 1), "32"));
    expect(steps).toEqual([
      "0",
      "04",
      "047",
      "0475",
      "0475 1",
      "0475 12",
      "0475 12 3",
      "0475 12 34",
      "0475 12 34 5",
      "0475 12 34 56",
    ]);
    expect(formatNumber("+3", "32")).toBe("+3");
    expect(formatNumber("+324", "32")).toBe("04");
    expect(formatNumber("0033612", "32")).toBe("0033 6 12");
  });

  it("leaves extensions and service codes alone", () => {
    expect(formatNumber("1002", "32")).toBe("1002");
    expect(formatNumber("*971002", "32")).toBe("*971002");
    expect(formatNumber("", "32")).toBe("");
  });
});

describe("calling codes", () => {
  it("splits E.164 numbers by ITU country code length", () => {
    expect(splitCountry("+3225550100")).toEqual(["32", "25550100"]);
    expect(splitCountry("+14155550100")).toEqual(["1", "4155550100"]);
    expect(splitCountry("+352123456")).toEqual(["352", "123456"]);
  });

  it("finds the company's code among its numbers", () => {
    expect(callingCodeOf(["1002", "+3225550100"])).toBe("32");
    expect(callingCodeOf([])).toBeNull();
  });
});

describe("callingCodeOfCountry", () => {
  it("knows the countries companies are set up in most", () => {
    expect(callingCodeOfCountry("BE")).toBe("32");
    expect(callingCodeOfCountry("lu")).toBe("352");
    expect(callingCodeOfCountry("ZZ")).toBeNull();
    expect(callingCodeOfCountry(undefined)).toBeNull();
  });
});

// Phone numbers as people read them: the company's own country's numbers in national form
// ("02 555 01 00", "0475 12 34 56"), others in international form ("+33 1 23 45 67 89"),
// extensions and service codes as they are. Also as one types them on the dialpad.

/** What a dialled text may keep: digits, * and #, and + first (as a phone dials). The
 * national prefix written "(0)" in international numbers ("+32 (0)2 ...") is not dialled. */
export function dialable(text: string): string {
  const kept = text.replace(/\(0\)/g, "").replace(/[^0-9*#+]/g, "");
  const plus = kept.startsWith("+");
  return (plus ? "+" : "") + kept.replace(/\+/g, "");
}

// ITU-T E.164 country codes are one digit (1, 7), three digits (these two-digit starts),
// or two digits.
const THREE_DIGIT = /^(21|22|23|24|25|26|29|35|37|38|42|50|59|67|68|69|80|85|87|88|96|97|99)/;

export function splitCountry(international: string): [string, string] {
  const digits = international.replace(/^\+/, "");
  const size = /^[17]/.test(digits) ? 1 : THREE_DIGIT.test(digits) ? 3 : 2;
  return [digits.slice(0, size), digits.slice(size)];
}

// The calling codes of the countries companies are set up in most; others are found from
// the numbers the app has seen (callingCodeOf).
const CALLING_CODES: Record<string, string> = {
  BE: "32", NL: "31", LU: "352", FR: "33", DE: "49", GB: "44", IE: "353", CH: "41",
  AT: "43", ES: "34", PT: "351", IT: "39", DK: "45", SE: "46", NO: "47", FI: "358",
  PL: "48", CZ: "420", US: "1", CA: "1",
};

/** The calling code of an ISO country ("BE" -> "32"), if known. */
export function callingCodeOfCountry(country: string | undefined): string | null {
  return (country && CALLING_CODES[country.toUpperCase()]) || null;
}

/** The calling code of the first E.164 number among ``numbers`` ("32"), or null. */
export function callingCodeOf(numbers: Iterable<string>): string | null {
  for (const number of numbers) {
    if (/^\+\d{6,}$/.test(number)) return splitCountry(number)[0];
  }
  return null;
}

function groups(digits: string, sizes: number[]): string {
  const out: string[] = [];
  let at = 0;
  for (const size of sizes) {
    if (at >= digits.length) break;
    out.push(digits.slice(at, at + size));
    at += size;
  }
  if (at < digits.length) out.push(digits.slice(at));
  return out.join(" ");
}

const NL_TWO_DIGIT_AREAS =
  /^(10|13|15|20|23|24|26|30|33|35|36|38|40|43|45|46|50|53|55|58|70|71|72|73|74|75|76|77|78|79)/;

/** The national significant number in groups, for the countries whose plan is known. */
function national(code: string, nsn: string): string | null {
  switch (code) {
    case "32": // Belgium
      if (/^4[5-9]/.test(nsn)) return groups(nsn, [3, 2, 2, 2]); // mobiles: 0475 12 34 56
      if (/^(800|90)/.test(nsn)) return groups(nsn, [3, 2, 3]); // 0800 12 345
      if (/^[2349]/.test(nsn)) return groups(nsn, [1, 3, 2, 2]); // 02 555 01 00
      return groups(nsn, [2, 2, 2, 2]); // 010 12 34 56
    case "31": // the Netherlands
      if (nsn.startsWith("6")) return groups(nsn, [1, 4, 4]); // 06 1234 5678
      if (/^(800|90)/.test(nsn)) return groups(nsn, [3, 4]);
      if (NL_TWO_DIGIT_AREAS.test(nsn)) return groups(nsn, [2, 3, 4]); // 020 123 4567
      return groups(nsn, [3, 3, 3]);
    case "33": // France
      return groups(nsn, [1, 2, 2, 2, 2]); // 01 23 45 67 89
    default:
      return null;
  }
}

/** ``number`` (E.164, national, an extension, a code) for people; ``home`` is the company's
 * calling code, when known. Works on partial input too. */
export function formatNumber(number: string, home: string | null): string {
  const text = dialable(number);
  if (/[*#]/.test(text) || text.length === 0) return text;
  let international: string | null = null;
  if (text.startsWith("+")) international = text.slice(1);
  else if (text.startsWith("00")) international = text.slice(2);
  if (international !== null) {
    if (international.length < 2) return text;
    const [code, nsn] = splitCountry(international);
    if (code === home && home !== null) {
      const local = national(code, nsn);
      if (local !== null) return "0" + local;
    }
    // A country whose plan is not known here: its number as it is, after the code.
    const rest = national(code, nsn) ?? nsn;
    return `${text.startsWith("+") ? "+" : "00"}${code}${rest ? " " + rest : ""}`;
  }
  if (text.startsWith("0") && home !== null && text.length > 1) {
    const local = national(home, text.slice(1));
    if (local !== null) return "0" + local;
  }
  return text;
}

import { useState } from "preact/hooks";
import { LANG_NAMES, LANGS, isLang, useI18n, type Key } from "../i18n";
import { LoginError, type LoginFailure } from "../session";
import { useServices } from "../services";

const FAILURES: Record<LoginFailure, Key> = {
  invalid_credentials: "login_invalid",
  too_many_requests: "login_throttled",
  network: "error_offline",
  error: "login_error",
};

export function Login() {
  const { session } = useServices();
  const { t, lang, chosen, choose } = useI18n();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<Key | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await session.login(email.trim(), password);
    } catch (failure) {
      setError(failure instanceof LoginError ? FAILURES[failure.reason] : "login_error");
      setPassword("");
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login">
      <div class="login-brand" aria-hidden="true">
        <img src="/icons/icon.svg" alt="" width={72} height={72} />
      </div>
      <h1>{t("app_name")}</h1>
      <p class="login-intro">{t("login_intro")}</p>
      <form class="login-form" onSubmit={submit} noValidate>
        <h2 class="visually-hidden">{t("login_title")}</h2>
        <label class="field">
          <span>{t("email")}</span>
          <input
            type="email"
            name="email"
            autoComplete="username"
            inputMode="email"
            required
            value={email}
            onInput={(event) => setEmail(event.currentTarget.value)}
          />
        </label>
        <label class="field">
          <span>{t("password")}</span>
          <input
            type="password"
            name="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(event) => setPassword(event.currentTarget.value)}
          />
        </label>
        {error && (
          <p class="form-error" role="alert">
            {t(error)}
          </p>
        )}
        <button type="submit" class="button button-primary" disabled={busy || !email || !password}>
          {busy ? t("signing_in") : t("sign_in")}
        </button>
      </form>
      <label class="field field-inline login-language">
        <span>{t("language")}</span>
        <select
          value={chosen ?? lang}
          onChange={(event) => {
            const value = event.currentTarget.value;
            choose(isLang(value) ? value : null);
          }}
        >
          {LANGS.map((code) => (
            <option value={code} lang={code} key={code}>
              {LANG_NAMES[code]}
            </option>
          ))}
        </select>
      </label>
    </main>
  );
}

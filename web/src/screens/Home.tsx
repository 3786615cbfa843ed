// The home screen (F1, F4, F5): the blue bar (menu), the status bar in the status's colour
// (tap or swipe left: the status menu), the search field (results as one types), the
// favorites with their live status and line state, the dialpad button.

import { useEffect, useRef, useState } from "preact/hooks";
import type { Contact } from "../api/types";
import { useT } from "../i18n";
import { navigate } from "../router";
import { useServices } from "../services";
import { useStore } from "../store";
import { statusColour, statusIcon, textOn } from "../ui/colours";
import { ContactRow, EmptyState, Link, NoDeviceNotice } from "../ui/components";
import { Icon } from "../ui/icons";
import { useSwipe } from "../ui/swipe";

const SEARCH_DELAY_MS = 120;

export function Home({ menuOpen }: { menuOpen?: boolean }) {
  const { store } = useServices();
  const state = useStore(store);
  const t = useT();
  const heading = useRef<HTMLHeadingElement>(null);
  const blueBar = useSwipe({ onSwipeRight: () => navigate("/menu") });
  const statusBar = useSwipe({ onSwipeLeft: () => navigate("/status") });
  const status = state.myStatus ?? undefined;
  const colour = statusColour(status);
  const [query, setQuery] = useState("");

  useEffect(() => {
    if (!menuOpen) heading.current?.focus({ preventScroll: true });
  }, [menuOpen]);

  return (
    <div class="screen home" inert={menuOpen}>
      <header class="appbar" {...blueBar}>
        <Link href="/menu" class="icon-button" aria-label={t("menu_open")} id="menu-button">
          <Icon name="menu" />
        </Link>
        <h1 tabIndex={-1} ref={heading}>
          {state.me?.company.name ?? t("app_name")}
        </h1>
        <span class="appbar-user" aria-hidden="true">
          {state.me?.extension}
        </span>
      </header>
      <button
        type="button"
        class="statusbar"
        style={{ background: colour, color: textOn(colour) }}
        aria-label={t("status_bar", { name: status?.name ?? "…" })}
        data-status={status?.key}
        onClick={() => navigate("/status")}
        {...statusBar}
      >
        <Icon name={statusIcon(status)} />
        <span class="statusbar-name">{status?.name ?? "…"}</span>
        <Icon name="chevron" />
      </button>
      <main class="screen-body">
        <NoDeviceNotice />
        <SearchField query={query} onQuery={setQuery} />
        {query.trim() ? <SearchResults query={query.trim()} /> : <Favorites />}
      </main>
      <Link href="/dial" class="fab" aria-label={t("dialpad_open")}>
        <Icon name="dialpad" size={28} />
      </Link>
    </div>
  );
}

function SearchField({ query, onQuery }: { query: string; onQuery: (q: string) => void }) {
  const t = useT();
  return (
    <div class="search" role="search">
      <Icon name="search" />
      <input
        type="search"
        aria-label={t("search_label")}
        placeholder={t("search_placeholder")}
        autoComplete="off"
        enterKeyHint="search"
        value={query}
        onInput={(event) => onQuery(event.currentTarget.value)}
      />
      {query && (
        <button
          type="button"
          class="icon-button"
          aria-label={t("search_clear")}
          onClick={() => onQuery("")}
        >
          <Icon name="close" />
        </button>
      )}
    </div>
  );
}

function SearchResults({ query }: { query: string }) {
  const { api, store, notify } = useServices();
  const state = useStore(store);
  const t = useT();
  const [found, setFound] = useState<{ query: string; ids: number[] } | null>(null);

  useEffect(() => {
    let current = true;
    const timer = setTimeout(async () => {
      try {
        const results: Contact[] = await api.search(query);
        if (!current) return;
        store.remember(results);
        setFound({ query, ids: results.map((contact) => contact.id) });
      } catch (error) {
        if (current) notify(t("error_generic", { message: (error as Error).message }), "error");
      }
    }, SEARCH_DELAY_MS);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [query]);

  const contacts = (found?.ids ?? [])
    .map((id) => state.contacts[id])
    .filter((contact): contact is Contact => contact !== undefined);
  const summary =
    found === null
      ? t("loading")
      : contacts.length === 0
        ? t("search_none", { query: found.query })
        : contacts.length === 1
          ? t("search_one")
          : t("search_many", { count: contacts.length });
  return (
    <section aria-labelledby="results-heading">
      <h2 id="results-heading" class="section-title" aria-live="polite">
        {summary}
      </h2>
      <ul class="contact-list">
        {contacts.map((contact) => (
          <ContactRow contact={contact} key={contact.id} />
        ))}
      </ul>
    </section>
  );
}

function Favorites() {
  const { store } = useServices();
  const state = useStore(store);
  const t = useT();
  const favorites = state.favorites
    .map((id) => state.contacts[id])
    .filter((contact): contact is Contact => contact !== undefined);
  return (
    <section aria-labelledby="favorites-heading" class="favorites">
      <h2 id="favorites-heading" class="section-title">
        {t("favorites")}
      </h2>
      {favorites.length === 0 ? (
        <EmptyState icon="starOutline">{t("favorites_empty")}</EmptyState>
      ) : (
        <ul class="contact-list">
          {favorites.map((contact) => (
            <ContactRow contact={contact} key={contact.id} />
          ))}
        </ul>
      )}
    </section>
  );
}

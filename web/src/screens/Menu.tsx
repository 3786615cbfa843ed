// The general menu (swipe the blue bar to the right, or its menu button): call log,
// voicemail, ACD groups (only for members of a group, F18), settings.

import { useEffect, useRef } from "preact/hooks";
import { useT } from "../i18n";
import { back } from "../router";
import { useServices } from "../services";
import { useStore } from "../store";
import { Link } from "../ui/components";
import { Icon, type IconName } from "../ui/icons";
import { useSwipe } from "../ui/swipe";

export function Menu() {
  const { store } = useServices();
  const state = useStore(store);
  const t = useT();
  const panel = useRef<HTMLElement>(null);
  const swipe = useSwipe({ onSwipeLeft: () => back("/") });

  useEffect(() => {
    panel.current?.querySelector<HTMLElement>("a, button")?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") back("/");
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      document.getElementById("menu-button")?.focus();
    };
  }, []);

  const groupMessages = state.groups.reduce((sum, group) => sum + group.new_messages, 0);
  return (
    <div class="drawer-backdrop" onClick={() => back("/")}>
      <nav
        class="drawer"
        ref={panel}
        aria-label={t("menu_title")}
        onClick={(event) => event.stopPropagation()}
        {...swipe}
      >
        <div class="drawer-head">
          <button
            type="button"
            class="icon-button"
            aria-label={t("menu_close")}
            onClick={() => back("/")}
          >
            <Icon name="close" />
          </button>
          <div class="drawer-user">
            <span class="drawer-name">{state.me?.name}</span>
            <span class="drawer-meta">
              {state.me?.extension} · {state.me?.company.name}
            </span>
          </div>
        </div>
        <ul class="drawer-list">
          <Entry href="/calls" icon="history" label={t("menu_calllog")} />
          <Entry
            href="/voicemail"
            icon="voicemail"
            label={t("menu_voicemail")}
            badge={state.newVoicemail > 0 ? t("menu_new", { count: state.newVoicemail }) : undefined}
          />
          {state.groups.length > 0 && (
            <Entry
              href="/groups"
              icon="groups"
              label={t("menu_groups")}
              badge={groupMessages > 0 ? t("menu_new", { count: groupMessages }) : undefined}
            />
          )}
          <Entry href="/settings" icon="settings" label={t("menu_settings")} />
        </ul>
      </nav>
    </div>
  );
}

function Entry(props: { href: string; icon: IconName; label: string; badge?: string }) {
  return (
    <li>
      <Link href={props.href} class="drawer-entry" replace>
        <Icon name={props.icon} />
        <span class="drawer-label">{props.label}</span>
        {props.badge && <span class="badge">{props.badge}</span>}
      </Link>
    </li>
  );
}

// ACD groups (F18): the groups I am a member of, each with its voicemail box. (Logging in
// and out of a group, F19, comes with the ACD engine.)

import { useEffect } from "preact/hooks";
import { useT } from "../i18n";
import { useServices } from "../services";
import { useStore } from "../store";
import { EmptyState, Link, Screen } from "../ui/components";
import { Icon } from "../ui/icons";
import { VoicemailBox } from "./Voicemail";

export function Groups() {
  const { api, store } = useServices();
  const state = useStore(store);
  const t = useT();

  useEffect(() => {
    api
      .groups()
      .then((groups) => store.set({ groups }))
      .catch(() => undefined);
  }, []);

  return (
    <Screen title={t("groups_title")}>
      {state.groups.length === 0 ? (
        <EmptyState icon="groups">{t("groups_empty")}</EmptyState>
      ) : (
        <ul class="group-list">
          {state.groups.map((group) => (
            <li key={group.id} data-group={group.id}>
              <Link href={`/groups/${group.id}`} class="group-link">
                <Icon name="groups" />
                <span class="group-text">
                  <span class="group-name">{group.name}</span>
                  <span class="log-detail">{t("group_extension", { extension: group.extension })}</span>
                  <span class="log-detail">
                    <Icon name="voicemail" size={16} />{" "}
                    {t("group_counts", { new: group.new_messages, old: group.old_messages })}
                  </span>
                </span>
                <Icon name="chevron" />
              </Link>
            </li>
          ))}
        </ul>
      )}
    </Screen>
  );
}

export function GroupVoicemail({ id }: { id: number }) {
  const { store } = useServices();
  const state = useStore(store);
  const t = useT();
  const group = state.groups.find((g) => g.id === id);
  return (
    <Screen title={t("group_box", { name: group?.name ?? "…" })} backTo="/groups">
      <VoicemailBox groupId={id} />
    </Screen>
  );
}

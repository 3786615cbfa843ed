// Voicemail (F17): my own box's messages, new first; each plays in an <audio> element fed
// by the audio route (fetched with the token, as a blob URL), is marked heard when played
// or on demand, and can be deleted. A group's box (F18) is the same list for its members.

import { useEffect, useRef, useState } from "preact/hooks";
import type { VoicemailMessage } from "../api/types";
import { useI18n } from "../i18n";
import { useServices } from "../services";
import { useStore } from "../store";
import { AudioPlayer, EmptyState, Screen, useCall, useFormat } from "../ui/components";
import { formatDuration, formatWhen } from "../ui/format";
import { Icon } from "../ui/icons";

export function Voicemail() {
  const { t } = useI18n();
  return (
    <Screen title={t("voicemail_title")}>
      <VoicemailBox groupId={null} />
    </Screen>
  );
}

export function VoicemailBox({ groupId }: { groupId: number | null }) {
  const { api, store, notify } = useServices();
  const { t } = useI18n();
  const [messages, setMessages] = useState<VoicemailMessage[] | null>(null);
  const box = api.voicemail(groupId);
  const generation = useRef(0);

  async function load() {
    const asked = ++generation.current;
    try {
      const listed = await box.list();
      if (asked === generation.current) setMessages(listed);
    } catch (error) {
      notify(t("error_generic", { message: (error as Error).message }), "error");
      setMessages((current) => current ?? []);
    }
  }

  useEffect(() => {
    setMessages(null);
    void load();
    return store.onEvent((event) => {
      if (event.type === "sync") {
        void load();
        return;
      }
      if (!event.type.startsWith("voicemail.") || (event.data.group_id ?? null) !== groupId) return;
      const id = event.data.id as number;
      if (event.type === "voicemail.created") {
        const message = event.data as VoicemailMessage;
        setMessages((current) =>
          current && !current.some((m) => m.id === id) ? [message, ...current] : current,
        );
      } else if (event.type === "voicemail.heard") {
        setMessages((current) => current?.map((m) => (m.id === id ? { ...m, new: false } : m)) ?? null);
      } else if (event.type === "voicemail.deleted") {
        setMessages((current) => current?.filter((m) => m.id !== id) ?? null);
      }
    });
  }, [groupId]);

  if (messages === null) return <p class="loading">{t("loading")}</p>;
  if (messages.length === 0) return <EmptyState icon="voicemail">{t("voicemail_empty")}</EmptyState>;
  return (
    <ul class="message-list">
      {messages.map((message) => (
        <MessageRow
          message={message}
          key={message.id}
          load={() => box.audio(message.id)}
          markHeard={async () => {
            await box.markHeard(message.id);
            setMessages((current) =>
              current?.map((m) => (m.id === message.id ? { ...m, new: false } : m)) ?? null,
            );
          }}
          remove={async () => {
            await box.remove(message.id);
            setMessages((current) => current?.filter((m) => m.id !== message.id) ?? null);
            notify(t("deleted"));
          }}
        />
      ))}
    </ul>
  );
}

function MessageRow(props: {
  message: VoicemailMessage;
  load: () => Promise<Blob>;
  markHeard: () => Promise<void>;
  remove: () => Promise<void>;
}) {
  const { notify, store } = useServices();
  const state = useStore(store);
  const { t, lang } = useI18n();
  const call = useCall();
  const format = useFormat();
  const [confirming, setConfirming] = useState(false);
  const { message } = props;
  const number = message.caller.number;
  const colleague = Object.values(state.contacts).find((c) => c.extension === number);
  const name = message.caller.name || colleague?.name || (number ? format(number) : t("unknown_number"));
  const title = t("message_from", { name });
  const failed = (error: unknown) =>
    notify(t("error_generic", { message: (error as Error).message }), "error");

  return (
    <li class={`message${message.new ? " message-new" : ""}`} data-message={message.id}>
      <div class="message-head">
        <span class="message-text">
          <span class="message-name">
            {name}
            {message.new && <span class="tag tag-new">{t("message_new")}</span>}
          </span>
          {number && name !== format(number) && <span class="log-number">{format(number)}</span>}
          <span class="log-detail">
            <time dateTime={message.created_at}>{formatWhen(message.created_at, lang, t)}</time>
            {" · "}
            {formatDuration(message.duration_ms)}
          </span>
        </span>
        {number && (
          <button
            type="button"
            class="icon-button call-button"
            aria-label={t("call_back", { name })}
            onClick={() => void call(number)}
          >
            <Icon name="phone" />
          </button>
        )}
      </div>
      <div class="message-actions">
        <AudioPlayer
          label={title}
          load={props.load}
          onPlay={() => {
            if (message.new) props.markHeard().catch(failed);
          }}
        />
        {message.new && (
          <button
            type="button"
            class="button button-secondary"
            onClick={() => props.markHeard().catch(failed)}
          >
            <Icon name="check" />
            <span>{t("mark_heard")}</span>
          </button>
        )}
        {confirming ? (
          <span class="confirm" role="group" aria-label={t("delete_confirm")}>
            <span>{t("delete_confirm")}</span>
            <button
              type="button"
              class="button button-danger"
              onClick={() => props.remove().catch(failed)}
            >
              {t("delete")}
            </button>
            <button type="button" class="button button-secondary" onClick={() => setConfirming(false)}>
              {t("cancel")}
            </button>
          </span>
        ) : (
          <button
            type="button"
            class="button button-secondary"
            aria-label={t("delete_message", { name })}
            onClick={() => setConfirming(true)}
          >
            <Icon name="trash" />
            <span>{t("delete")}</span>
          </button>
        )}
      </div>
    </li>
  );
}

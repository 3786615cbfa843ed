// A colleague's card (F5): extension, numbers, email, status and line state, each number
// with its call button; the star (top right) adds them to or removes them from favorites.
// While the user holds a call to choose whom next (F12), "Transfer" sends the held call
// to this colleague after a confirmation (F14: a blind transfer).

import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../api/client";
import { useT } from "../i18n";
import { currentCall, type SoftCall } from "../phone/softphone";
import { useCallName } from "./Call";
import { navigate } from "../router";
import { useServices } from "../services";
import { useStore } from "../store";
import {
  Avatar,
  ConfirmDialog,
  EmptyState,
  LineBadge,
  NoDeviceNotice,
  Screen,
  StatusBadge,
  useCall,
  useFormat,
  useSoftphone,
} from "../ui/components";
import { Icon } from "../ui/icons";

export function ContactCard({ id }: { id: number }) {
  const { api, store, notify } = useServices();
  const state = useStore(store);
  const t = useT();
  const call = useCall();
  const format = useFormat();
  const [missing, setMissing] = useState(false);
  const [starring, setStarring] = useState(false);
  const contact = state.contacts[id];

  useEffect(() => {
    let current = true;
    api
      .contact(id)
      .then((fresh) => current && store.remember([fresh]))
      .catch((error) => {
        if (!current) return;
        if (error instanceof ApiError && error.status === 404) setMissing(true);
        else notify(t("error_generic", { message: (error as Error).message }), "error");
      });
    return () => {
      current = false;
    };
  }, [id]);

  if (contact === undefined) {
    return (
      <Screen title={t("card_title")}>
        {missing ? <EmptyState icon="offline">{t("contact_missing")}</EmptyState> : <p class="loading">{t("loading")}</p>}
      </Screen>
    );
  }

  const favorite = state.favorites.includes(id);
  const mine = state.me?.id === id;
  async function toggle() {
    if (contact === undefined) return;
    setStarring(true);
    try {
      await store.star(id, !favorite);
      notify(t(favorite ? "favorite_removed" : "favorite_added", { name: contact.name }));
    } catch (error) {
      notify(t("error_generic", { message: (error as Error).message }), "error");
    } finally {
      setStarring(false);
    }
  }

  const star = mine ? null : (
    <button
      type="button"
      class={`icon-button star${favorite ? " star-on" : ""}`}
      aria-pressed={favorite}
      aria-label={t(favorite ? "star_remove" : "star_add", { name: contact.name })}
      disabled={starring}
      onClick={() => void toggle()}
    >
      <Icon name={favorite ? "star" : "starOutline"} />
    </button>
  );

  return (
    <Screen title={t("card_title")} actions={star} class="card">
      <div class="card-head">
        <Avatar name={contact.name} statusKey={contact.status} large />
        <h2 class="card-name">{contact.name}</h2>
        <p class="card-presence">
          <StatusBadge statusKey={contact.status} name={contact.status_name} />
          <LineBadge state={contact.line_state} />
        </p>
      </div>
      <NoDeviceNotice />
      {!mine && <BlindTransfer name={contact.name} extension={contact.extension} />}
      <dl class="card-details">
        <div class="card-row">
          <dt>{t("extension")}</dt>
          <dd>
            <span>{contact.extension}</span>
            {!mine && (
              <button
                type="button"
                class="icon-button call-button"
                aria-label={t("call_target", { name: contact.name, number: contact.extension })}
                onClick={() => void call(contact.extension)}
              >
                <Icon name="phone" />
              </button>
            )}
          </dd>
        </div>
        {contact.numbers.map((number) => (
          <div class="card-row" key={number}>
            <dt>{t("number")}</dt>
            <dd>
              <span>{format(number)}</span>
              {!mine && (
                <button
                  type="button"
                  class="icon-button call-button"
                  aria-label={t("call_target", { name: contact.name, number: format(number) })}
                  onClick={() => void call(number)}
                >
                  <Icon name="phone" />
                </button>
              )}
            </dd>
          </div>
        ))}
        <div class="card-row">
          <dt>{t("email")}</dt>
          <dd>
            <a href={`mailto:${contact.email}`}>{contact.email}</a>
          </dd>
        </div>
      </dl>
    </Screen>
  );
}

/** The call the user holds while choosing whom to call next, if it can be transferred. */
function useHeldCall(): SoftCall | null {
  const { softphone } = useServices();
  const state = useSoftphone(softphone);
  if (state === null || !state.choosing) return null;
  const held = currentCall(state);
  return held !== null && held.held && held.apiId !== null ? held : null;
}

function BlindTransfer({ name, extension }: { name: string; extension: string }) {
  const { api, softphone, notify } = useServices();
  const t = useT();
  const held = useHeldCall();
  const heldName = useCallName(held ?? { name: "", number: "", apiId: null }).name;
  const [asking, setAsking] = useState(false);
  if (held === null || softphone === undefined) return null;
  const transfer = async () => {
    setAsking(false);
    softphone.expectEnd(held.id, "transferred");
    try {
      await api.transfer(held.apiId as string, extension);
      notify(t("transfer_completed"));
      navigate("/");
    } catch (error) {
      softphone.expectEnd(held.id, null);
      notify(t("error_generic", { message: (error as Error).message }), "error");
    }
  };
  return (
    <div class="card-transfer">
      <button type="button" class="button button-primary" onClick={() => setAsking(true)}>
        <Icon name="transfer" />
        <span>{t("transfer")}</span>
      </button>
      {asking && (
        <ConfirmDialog
          title={t("transfer")}
          confirm={t("transfer")}
          onCancel={() => setAsking(false)}
          onConfirm={() => void transfer()}
        >
          {t("transfer_confirm", { held: heldName, name })}
        </ConfirmDialog>
      )}
    </div>
  );
}

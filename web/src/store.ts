// The app's shared state: who I am, the company's statuses, my status, my favorites and
// the colleagues seen (with their live status and line state), my live calls, my groups.
// Loaded through the REST API at each sync, then kept current by the event stream.

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api/client";
import type {
  Contact,
  Group,
  LiveCall,
  LiveEvent,
  Me,
  Status,
  VoicemailMessage,
} from "./api/types";
import type { StreamState } from "./events";

export interface AppState {
  me: Me | null;
  statuses: Status[];
  myStatus: Status | null;
  /** Favorites' ids, in the order they were starred. */
  favorites: number[];
  /** Every colleague seen (favorites, search results, cards), by id. */
  contacts: Record<number, Contact>;
  calls: LiveCall[];
  groups: Group[];
  /** New messages in my own voicemail box. */
  newVoicemail: number;
  stream: StreamState;
  /** The first sync is done: the screens have something to show. */
  ready: boolean;
  /** Why the last sync failed (null when it worked). */
  syncError: string | null;
}

export function initialState(): AppState {
  return {
    me: null,
    statuses: [],
    myStatus: null,
    favorites: [],
    contacts: {},
    calls: [],
    groups: [],
    newVoicemail: 0,
    stream: "closed",
    ready: false,
    syncError: null,
  };
}

export type EventListener = (event: LiveEvent) => void;

export class Store {
  private state: AppState = initialState();
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Set<EventListener>();
  private syncing: Promise<void> | null = null;

  constructor(private readonly api: Api) {}

  get(): AppState {
    return this.state;
  }

  set(patch: Partial<AppState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of [...this.listeners]) listener();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Screens that keep lists of their own (call log, voicemail) follow the events here;
   * a "sync" event means: reload. */
  onEvent(listener: EventListener): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  reset(): void {
    this.state = initialState();
    for (const listener of [...this.listeners]) listener();
  }

  /** Everything again from the REST API; a failure is kept in ``syncError``. */
  sync(): Promise<void> {
    if (this.syncing === null) {
      this.syncing = this.load()
        .catch((error: Error) => this.set({ syncError: error.message || String(error) }))
        .finally(() => {
          this.syncing = null;
        });
    }
    this.emit({ type: "sync", data: null });
    return this.syncing;
  }

  private async load(): Promise<void> {
    const api = this.api;
    const [me, statuses, myStatus, favorites, calls, groups, voicemail] = await Promise.all([
      api.me(),
      api.statuses(),
      api.myStatus(),
      api.favorites(),
      api.calls(),
      api.groups(),
      api.voicemail(null).list(),
    ]);
    const mine = await api.contact(me.id);
    const contacts = { ...this.state.contacts, [mine.id]: mine };
    for (const contact of favorites) contacts[contact.id] = contact;
    this.set({
      me,
      statuses,
      myStatus,
      favorites: favorites.map((contact) => contact.id),
      contacts,
      calls,
      groups,
      newVoicemail: countNew(voicemail),
      ready: true,
      syncError: null,
    });
  }

  /** Colleagues fetched elsewhere (search, card): remembered with their presence. */
  remember(contacts: Contact[]): void {
    if (contacts.length === 0) return;
    const all = { ...this.state.contacts };
    for (const contact of contacts) all[contact.id] = contact;
    this.set({ contacts: all });
  }

  async star(id: number, on: boolean): Promise<void> {
    if (on) await this.api.star(id);
    else await this.api.unstar(id);
    await this.favoriteChanged(id, on);
  }

  apply(event: LiveEvent): void {
    const data = event.data;
    switch (event.type) {
      case "presence.status": {
        const status = data.status as Status;
        this.patchContact(data.user_id, { status: status.key, status_name: status.name });
        if (data.user_id === this.state.me?.id) this.set({ myStatus: status });
        break;
      }
      case "presence.line":
        this.patchContact(data.user_id, { line_state: data.line_state });
        break;
      case "favorites.changed":
        void this.favoriteChanged(data.user_id, Boolean(data.favorite));
        break;
      case "call.ended":
        this.set({ calls: this.state.calls.filter((call) => call.id !== data.id) });
        break;
      case "voicemail.created":
      case "voicemail.heard":
      case "voicemail.deleted":
        void this.recountVoicemail(data.group_id ?? null);
        break;
      default:
        if (event.type.startsWith("call.") && data && typeof data.id === "string") {
          const call = data as LiveCall;
          const others = this.state.calls.filter((c) => c.id !== call.id);
          this.set({ calls: [...others, call] });
        }
    }
    this.emit(event);
  }

  private async favoriteChanged(id: number, on: boolean): Promise<void> {
    const listed = this.state.favorites.includes(id);
    if (!on) {
      if (listed) this.set({ favorites: this.state.favorites.filter((f) => f !== id) });
      return;
    }
    if (listed) return;
    const contact = this.state.contacts[id] ?? (await this.api.contact(id));
    if (this.state.favorites.includes(id)) return;
    this.set({
      favorites: [...this.state.favorites, id],
      contacts: { ...this.state.contacts, [id]: contact },
    });
  }

  private patchContact(id: number, patch: Partial<Contact>): void {
    const contact = this.state.contacts[id];
    if (contact === undefined) return;
    this.set({ contacts: { ...this.state.contacts, [id]: { ...contact, ...patch } } });
  }

  private async recountVoicemail(groupId: number | null): Promise<void> {
    try {
      if (groupId === null) {
        this.set({ newVoicemail: countNew(await this.api.voicemail(null).list()) });
      } else {
        this.set({ groups: await this.api.groups() });
      }
    } catch {
      // Offline: the next sync counts again.
    }
  }

  private emit(event: LiveEvent): void {
    for (const listener of [...this.eventListeners]) listener(event);
  }
}

function countNew(messages: VoicemailMessage[]): number {
  return messages.filter((message) => message.new).length;
}

/** The store's state in a component, re-rendered at each change. */
export function useStore(store: Store): AppState {
  const [state, setState] = useState(store.get());
  useEffect(() => {
    setState(store.get());
    return store.subscribe(() => setState(store.get()));
  }, [store]);
  return state;
}

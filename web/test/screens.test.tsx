import { act, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "../src/app";
import type { EventStream } from "../src/events";
import { ContactCard } from "../src/screens/ContactCard";
import { Dialpad } from "../src/screens/Dialpad";
import { Home } from "../src/screens/Home";
import { StatusMenu } from "../src/screens/StatusMenu";
import { LoginError, Session } from "../src/session";
import { Store } from "../src/store";
import { contrast } from "../src/ui/colours";
import type { Api } from "../src/api/client";
import { STATUSES, contact, setup } from "./harness";

beforeEach(() => {
  localStorage.clear();
  history.replaceState(null, "", "/");
});

afterEach(() => vi.useRealTimers());

describe("Home", () => {
  it("shows my status by name and shape on its colour, and opens the menu on a swipe", () => {
    const { store, render: show } = setup();
    store.set({ myStatus: STATUSES[2] });
    show(<Home />);
    const bar = screen.getByRole("button", { name: "Status: Do not disturb. Change status" });
    expect(bar.textContent).toContain("Do not disturb");
    expect(bar.querySelector("svg")).not.toBeNull();
    const style = bar.getAttribute("style") ?? "";
    expect(style).toContain("background: rgb(198, 40, 40)");
    expect(contrast("#c62828", "#ffffff")).toBeGreaterThan(4.5);
    fireEvent.pointerDown(bar, { clientX: 300, clientY: 80, pointerId: 1 });
    fireEvent.pointerUp(bar, { clientX: 150, clientY: 85, pointerId: 1 });
    expect(location.pathname).toBe("/status");
  });

  it("keeps favorites' status and line state live", () => {
    const { store, render: show } = setup();
    store.set({
      favorites: [2],
      contacts: { ...store.get().contacts, 2: contact(2, "Lucas Dubois") },
    });
    show(<Home />);
    const row = screen.getByText("Lucas Dubois").closest("li")!;
    expect(row.textContent).toContain("Available");
    expect(row.textContent).toContain("Free");
    act(() => {
      store.apply({ type: "presence.status", data: { user_id: 2, status: STATUSES[1] } });
      store.apply({ type: "presence.line", data: { user_id: 2, line_state: "ringing" } });
    });
    expect(row.textContent).toContain("In a meeting");
    expect(row.textContent).toContain("Ringing");
    expect(row.querySelector("[data-status]")?.getAttribute("data-status")).toBe("meeting");
  });

  it("searches as one types", async () => {
    const search = vi.fn(async (q: string) => (q === "lu" ? [contact(2, "Lucas Dubois")] : []));
    const { render: show } = setup({ api: { search } as Partial<Api> });
    show(<Home />);
    fireEvent.input(screen.getByRole("searchbox", { name: "Search colleagues" }), {
      target: { value: "lu" },
    });
    await screen.findByText("Lucas Dubois");
    expect(screen.getByRole("heading", { name: "1 colleague found" })).toBeTruthy();
    expect(search).toHaveBeenCalledWith("lu");
  });
});

describe("Status menu", () => {
  it("lists the statuses when the current one is tapped, and sets the one tapped", async () => {
    const setStatus = vi.fn(async () => STATUSES[1]);
    const { store, render: show } = setup({ api: { setStatus } as Partial<Api> });
    show(<StatusMenu />);
    const current = screen.getByRole("button", { name: /Your status: Available/ });
    expect(current.getAttribute("aria-expanded")).toBe("false");
    fireEvent.click(current);
    expect(screen.getByText("Callers hear busy: do not disturb. Group calls paused.")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: /In a meeting/ }));
    await waitFor(() => expect(store.get().myStatus?.key).toBe("meeting"));
    expect(setStatus).toHaveBeenCalledWith("meeting");
  });
});

describe("Dialpad", () => {
  it("formats the number as it is keyed, and calls it", async () => {
    const { calls, notices, render: show } = setup();
    show(<Dialpad />);
    for (const key of "0475123456") fireEvent.click(screen.getByRole("button", { name: key === "0" ? "0, hold for +" : key }));
    const field = screen.getByRole("textbox", { name: "Number to call" }) as HTMLInputElement;
    expect(field.value).toBe("0475 12 34 56");
    fireEvent.click(screen.getByRole("button", { name: "Call 0475 12 34 56" }));
    await waitFor(() => expect(calls).toEqual(["0475123456"]));
    expect(notices).toEqual(["Your phone rings: answer it to call 0475 12 34 56."]);
  });

  it("takes a pasted number, and says when no phone of mine can ring", async () => {
    const { calls, notices, render: show } = setup({
      outcome: { ok: false, reason: "no_device", message: "None of your phones is registered" },
    });
    show(<Dialpad />);
    const field = screen.getByRole("textbox", { name: "Number to call" }) as HTMLInputElement;
    fireEvent.input(field, { target: { value: "+32 (0)2 555.01.00" } });
    expect(field.value).toBe("02 555 01 00");
    fireEvent.submit(field.closest("form")!);
    await waitFor(() => expect(calls).toEqual(["+3225550100"]));
    expect(notices[0]).toContain("None of your phones is registered");
  });
});

describe("Contact card", () => {
  it("stars and unstars a colleague", async () => {
    const lucas = contact(2, "Lucas Dubois", { numbers: ["+3225550102"] });
    const api = {
      contact: vi.fn(async () => lucas),
      star: vi.fn(async () => undefined),
      unstar: vi.fn(async () => undefined),
    };
    const { store, render: show } = setup({ api: api as Partial<Api> });
    show(<ContactCard id={2} />);
    await screen.findByText("Lucas Dubois");
    expect(screen.getByText("02 555 01 02")).toBeTruthy();
    const star = screen.getByRole("button", { name: "Add Lucas Dubois to favorites" });
    expect(star.getAttribute("aria-pressed")).toBe("false");
    fireEvent.click(star);
    await waitFor(() => expect(store.get().favorites).toEqual([2]));
    const starred = screen.getByRole("button", { name: "Remove Lucas Dubois from favorites" });
    expect(starred.getAttribute("aria-pressed")).toBe("true");
    fireEvent.click(starred);
    await waitFor(() => expect(store.get().favorites).toEqual([]));
    expect(api.star).toHaveBeenCalledWith(2);
    expect(api.unstar).toHaveBeenCalledWith(2);
  });
});

describe("App", () => {
  function app(session: Session) {
    const api = {} as Api;
    const stream = { start: vi.fn(), stop: vi.fn() } as unknown as EventStream;
    const services = { session, api, store: new Store(api), phone: {} as never };
    return { stream, view: render(<App services={services} stream={stream} />) };
  }

  it("shows the login, says a wrong password is wrong, and switches language at once", async () => {
    const session = new Session({ channel: null, fetch: vi.fn() });
    vi.spyOn(session, "login").mockRejectedValue(new LoginError("invalid_credentials"));
    app(session);
    fireEvent.change(screen.getByRole("combobox", { name: "Language" }), { target: { value: "nl" } });
    expect(screen.getByRole("button", { name: "Aanmelden" })).toBeTruthy();
    expect(document.documentElement.lang).toBe("nl");
    expect(localStorage.getItem("nuage.lang")).toBe("nl");
    fireEvent.input(screen.getByLabelText("E-mail"), { target: { value: "elodie@acme.example" } });
    fireEvent.input(screen.getByLabelText("Wachtwoord"), { target: { value: "nope" } });
    fireEvent.click(screen.getByRole("button", { name: "Aanmelden" }));
    const error = await screen.findByText("Verkeerd e-mailadres of wachtwoord.");
    expect(error.getAttribute("role")).toBe("alert");
  });

  it("starts the event stream once logged in", async () => {
    localStorage.setItem("nuage.refresh", "refresh-1");
    const session = new Session({ channel: null, fetch: vi.fn() });
    const { stream } = app(session);
    expect(stream.start).toHaveBeenCalled();
    expect(screen.getByText("Loading…")).toBeTruthy();
  });
});

// A small client of examples/accounts, typed by the types openapi-typescript
// generates from docs/openapi.json (check.sh). It is never run: it is here
// to be type-checked, so that a change of the contract that would break a
// client (a renamed member, a changed type, a route gone) breaks this build.

import type { components, paths } from "./generated";

type Schemas = components["schemas"];
type Json<T> = T extends { content: { "application/json": infer Body } } ? Body : never;

type CreateUser = Json<paths["/users"]["post"]["requestBody"]>;
type User = Json<paths["/users"]["post"]["responses"][201]>;
type UserPage = Json<paths["/users"]["get"]["responses"][200]>;
type UserQuery = NonNullable<paths["/users"]["get"]["parameters"]["query"]>;
type UpdateUser = Json<paths["/users/{id}"]["patch"]["requestBody"]>;
type CreateInvoice = Json<paths["/billing/invoices"]["post"]["requestBody"]>;
type Invoice = Json<paths["/billing/invoices/{id}"]["get"]["responses"][200]>;
type IdempotencyKey =
  paths["/billing/invoices"]["post"]["parameters"]["header"]["Idempotency-Key"];
type Problem = Schemas["Problem"];
type Health = Schemas["Health"];

/** Every error answer is a problem, whatever the route and status. */
type NotFound =
  paths["/users/{id}"]["get"]["responses"][404]["content"]["application/problem+json"];
const sameAsProblem: Problem = null as unknown as NotFound;

async function call<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<T | Problem> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...headers, "content-type": "application/json" };
  }
  const response = await fetch(base + path, init);
  return (await response.json()) as T | Problem;
}

function isProblem(answer: object): answer is Problem {
  return "code" in answer && "status" in answer && "title" in answer;
}

export async function signUp(base: string): Promise<User | Problem> {
  const body: CreateUser = {
    email: "ann@example.com",
    name: "Ann Lee",
    password: "correct horse battery",
  };
  return call<User>(base, "POST", "/users", body);
}

export async function rename(base: string, user: User, name: string) {
  const changes: UpdateUser = { name };
  return call<User>(base, "PATCH", `/users/${user.id}`, changes);
}

export async function everyUser(base: string): Promise<User[]> {
  const users: User[] = [];
  const query: UserQuery = { limit: 100 };
  let path = `/users?limit=${query.limit}`;
  for (;;) {
    const page = await call<UserPage>(base, "GET", path);
    if (isProblem(page)) {
      throw new Error(`${page.code}: ${page.detail ?? page.title}`);
    }
    users.push(...page.items);
    const next: string | null = page.next_cursor;
    if (next === null) return users;
    path = `/users?limit=${query.limit}&cursor=${encodeURIComponent(next)}`;
  }
}

export async function bill(base: string, customer: User, key: IdempotencyKey) {
  const body: CreateInvoice = {
    customer_id: customer.id,
    currency: "EUR",
    lines: [{ description: "Widget", quantity: 2, unit_amount: 1250 }],
  };
  return call<Invoice>(base, "POST", "/billing/invoices", body, { "idempotency-key": key });
}

/** What an invoice still asks for, in minor units of its currency. */
export function due(invoice: Invoice): { amount: number; currency: Invoice["currency"] } {
  const amount = invoice.state === "open" ? invoice.total : 0;
  return { amount, currency: invoice.currency };
}

export function describe(invoice: Invoice): string {
  const engine: "v1" | "v2" = invoice.tax_engine;
  const paid: string | null = invoice.paid_at;
  const lines = invoice.lines.map(
    (line) => `${line.quantity} × ${line.description} at ${line.unit_amount}: ${line.amount}`,
  );
  return [
    `invoice ${invoice.id} for ${invoice.customer_id}, ${invoice.state}${paid ? ` on ${paid}` : ""}`,
    ...lines,
    `subtotal ${invoice.subtotal}, tax ${invoice.tax} (${engine}), total ${invoice.total}`,
  ].join("\n");
}

/** Where a problem says the request went wrong: a body pointer or a parameter. */
export function firstMistake(problem: Problem): string | undefined {
  const first = problem.errors?.[0];
  return first?.pointer ?? first?.parameter ?? undefined;
}

export function ready(report: Health): boolean {
  return report.status !== "fail";
}

export { sameAsProblem };

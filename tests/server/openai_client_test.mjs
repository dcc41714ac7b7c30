// The official `openai` npm client against a running `kvforge serve`
// (openai_client_test.sh starts it and passes its base URL). Completions and
// chat completions, with and without streaming, a bad request and the
// models list: the client must parse every answer, and the answers must
// agree with each other (greedy text streamed equals greedy text returned).
import OpenAI from "openai";
import assert from "node:assert/strict";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 120000 });

let checks = 0;
function check(what, fn) {
  return fn().then(
    () => {
      ++checks;
      console.log(`ok   ${what}`);
    },
    (e) => {
      console.error(`FAIL ${what}: ${e && e.stack ? e.stack : e}`);
      process.exitCode = 1;
    },
  );
}

const prompt = "Once upon a time";
let completionText = null;

await check("models.list names the served model", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [model]);
});

await check("completions.create (JSON)", async () => {
  const r = await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.ok(r.choices[0].text.length > 0);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  completionText = r.choices[0].text;
});

await check("completions.create (stream) gives the same text", async () => {
  const stream = await client.completions.create({
    model,
    prompt,
    max_tokens: 24,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let finishes = 0;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) ++finishes;
    }
  }
  assert.equal(text, completionText);
  assert.equal(finishes, 1);
  assert.ok(usage && usage.completion_tokens > 0);
});

let chatText = null;
await check("chat.completions.create (JSON)", async () => {
  const r = await client.chat.completions.create({
    model,
    messages: [
      { role: "system", content: "Tell a story." },
      { role: "user", content: "Hi" },
    ],
    max_tokens: 16,
    temperature: 0,
    n: 2,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices.length, 2);
  for (const c of r.choices) assert.equal(c.message.role, "assistant");
  // Greedy: both choices are the same text.
  assert.equal(r.choices[0].message.content, r.choices[1].message.content);
  chatText = r.choices[0].message.content;
});

await check("chat.completions.create (stream) gives the same text", async () => {
  const stream = await client.chat.completions.create({
    model,
    messages: [
      { role: "system", content: "Tell a story." },
      { role: "user", content: "Hi" },
    ],
    max_tokens: 16,
    temperature: 0,
    stream: true,
  });
  let text = "";
  let role = null;
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    const d = chunk.choices[0].delta;
    if (d.role) role = d.role;
    if (d.content) text += d.content;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(role, "assistant");
  assert.equal(text, chatText);
  assert.ok(["stop", "length"].includes(finish));
});

await check("a bad request is a BadRequestError naming the field", async () => {
  await assert.rejects(
    client.completions.create({ model, prompt, max_tokens: 0 }),
    (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.equal(e.status, 400);
      assert.equal(e.param, "max_tokens");
      return true;
    },
  );
});

await check("an unknown model is a NotFoundError", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, String(e));
      assert.equal(e.param, "model");
      return true;
    },
  );
});

console.log(`${checks} of 7 checks passed`);
if (checks !== 7) process.exitCode = 1;

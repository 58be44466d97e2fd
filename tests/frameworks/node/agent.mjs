// One agent of the framework matrix, run through the gateway; prints {"answer": ...} as JSON.
//
//   node agent.mjs <client> <generate|stream> <baseURL>
//
// client: openai-chat | openai-responses (the `openai` package, a hand-written tool loop),
// mastra-default | mastra-chat (@mastra/core's Agent on createOpenAI({baseURL})(model) or
// .chat(model); mastra-router: its model router, {id: "openai/<model>", url}), aisdk-default | aisdk-chat (the AI SDK's generateText / streamText).
// The scenario (question, instructions, the tool's fixed answer) comes from the environment,
// so the Python test owns it: MATRIX_ASK, MATRIX_INSTRUCTIONS, MATRIX_STATUS.
import { createOpenAI } from "@ai-sdk/openai";
import { Agent } from "@mastra/core/agent";
import { createTool } from "@mastra/core/tools";
import { generateText, isStepCount, streamText, tool } from "ai";
import OpenAI from "openai";
import { z } from "zod";

const [client, mode, baseURL] = process.argv.slice(2);
const ASK = process.env.MATRIX_ASK;
const INSTRUCTIONS = process.env.MATRIX_INSTRUCTIONS;
const STATUS = process.env.MATRIX_STATUS;
const stream = mode === "stream";

function lookupOrder({ order_id }) {
  if (order_id !== "A1234") throw new Error(`unexpected order id ${order_id}`);
  return STATUS;
}

const orderInput = z.object({ order_id: z.string().describe("The order's id, e.g. A1234") });

async function openaiChat() {
  const openai = new OpenAI({ baseURL, apiKey: "sk-agent", maxRetries: 0 });
  const tools = [{ type: "function", function: {
    name: "lookup_order", description: "Find an order's status", strict: true,
    parameters: { type: "object", properties: { order_id: { type: "string" } },
                  required: ["order_id"], additionalProperties: false } } }];
  const messages = [{ role: "system", content: INSTRUCTIONS }, { role: "user", content: ASK }];
  for (;;) {
    let text = "";
    let calls = [];
    if (stream) {
      const slots = {};
      for await (const chunk of await openai.chat.completions.create({ model: "gpt-4o", messages, tools, stream: true })) {
        const delta = chunk.choices[0]?.delta;
        if (!delta) continue;
        text += delta.content ?? "";
        for (const tc of delta.tool_calls ?? []) {
          const slot = (slots[tc.index] ??= { id: "", name: "", arguments: "" });
          slot.id += tc.id ?? "";
          slot.name += tc.function?.name ?? "";
          slot.arguments += tc.function?.arguments ?? "";
        }
      }
      calls = Object.values(slots).map((s) => ({ id: s.id, type: "function",
                                                 function: { name: s.name, arguments: s.arguments } }));
    } else {
      const message = (await openai.chat.completions.create({ model: "gpt-4o", messages, tools })).choices[0].message;
      text = message.content ?? "";
      calls = message.tool_calls ?? [];
    }
    if (calls.length === 0) return text;
    messages.push({ role: "assistant", content: text || null, tool_calls: calls });
    for (const call of calls) {
      messages.push({ role: "tool", tool_call_id: call.id,
                      content: lookupOrder(JSON.parse(call.function.arguments)) });
    }
  }
}

async function openaiResponses() {
  const openai = new OpenAI({ baseURL, apiKey: "sk-agent", maxRetries: 0 });
  const tools = [{ type: "function", name: "lookup_order", description: "Find an order's status", strict: true,
                   parameters: { type: "object", properties: { order_id: { type: "string" } },
                                 required: ["order_id"], additionalProperties: false } }];
  const input = [{ role: "user", content: ASK }];
  for (;;) {
    let response;
    if (stream) {
      const events = openai.responses.stream({ model: "gpt-4o", instructions: INSTRUCTIONS, input, tools });
      for await (const _ of events) { /* the events; the helper assembles the response */ }
      response = await events.finalResponse();
    } else {
      response = await openai.responses.create({ model: "gpt-4o", instructions: INSTRUCTIONS, input, tools });
    }
    const calls = response.output.filter((item) => item.type === "function_call");
    if (calls.length === 0) return response.output_text;
    for (const call of calls) {
      input.push(call);
      input.push({ type: "function_call_output", call_id: call.call_id,
                   output: lookupOrder(JSON.parse(call.arguments)) });
    }
  }
}

function model(kind) {
  if (kind === "router") return { id: "openai/gpt-4o", url: baseURL, apiKey: "sk-agent" };  // Mastra's model router
  const openai = createOpenAI({ baseURL, apiKey: "sk-agent" });
  return kind === "chat" ? openai.chat("gpt-4o") : openai("gpt-4o");
}

async function mastra(kind) {
  const lookup = createTool({
    id: "lookup_order", description: "Find an order's status", inputSchema: orderInput,
    execute: async (input) => lookupOrder(input),
  });
  const agent = new Agent({ id: "support", name: "support", instructions: INSTRUCTIONS, model: model(kind),
                            tools: { lookup_order: lookup } });
  if (!stream) return (await agent.generate(ASK, { maxSteps: 5 })).text;
  const result = await agent.stream(ASK, { maxSteps: 5 });
  let text = "";
  for await (const piece of result.textStream) text += piece;
  return text;
}

async function aisdk(kind) {
  const tools = { lookup_order: tool({ description: "Find an order's status", inputSchema: orderInput,
                                       execute: async (input) => lookupOrder(input) }) };
  const options = { model: model(kind), instructions: INSTRUCTIONS, prompt: ASK, tools, stopWhen: isStepCount(5),
                    maxRetries: 0 };
  if (!stream) return (await generateText(options)).text;
  let failure = null;
  const result = streamText({ ...options, onError: ({ error }) => { failure = error; } });
  let text = "";
  for await (const piece of result.textStream) text += piece;
  if (failure) throw failure;
  return text;
}

const run = {
  "openai-chat": openaiChat, "openai-responses": openaiResponses,
  "mastra-default": () => mastra("default"), "mastra-chat": () => mastra("chat"),
  "mastra-router": () => mastra("router"),
  "aisdk-default": () => aisdk("default"), "aisdk-chat": () => aisdk("chat"),
}[client];
if (!run) {
  console.error(`unknown client ${client}`);
  process.exit(2);
}
try {
  process.stdout.write(JSON.stringify({ answer: await run() }) + "\n");
} catch (error) {
  console.error(error?.stack ?? String(error));
  process.exit(1);
}

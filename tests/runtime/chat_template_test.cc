#include "runtime/chat_template.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/status.h"

namespace hart::runtime {
namespace {

const std::vector<ChatMessage> kConversation = {
    {ChatRole::kSystem, "You are terse."},
    {ChatRole::kUser, "Hi there "},
    {ChatRole::kAssistant, "Hello."},
    {ChatRole::kUser, "2+2?"},
};

TEST(ChatTemplate, Llama3) {
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kLlama3, kConversation, true),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Without the generation prompt the text ends with the last turn.
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kLlama3, std::span(kConversation).first(1), false),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>");
}

TEST(ChatTemplate, Chatml) {
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kChatml, kConversation, true),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHi there <|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplate, MistralFoldsSystemIntoFirstUserTurn) {
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kMistral, kConversation, true),
            "[INST] You are terse.\n\nHi there  [/INST]Hello.</s>[INST] 2+2? [/INST]");
}

TEST(ChatTemplate, Llama2) {
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kLlama2, kConversation, true),
            "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello. </s>"
            "<s>[INST] 2+2? [/INST]");
}

TEST(ChatTemplate, GemmaCallsTheAssistantModel) {
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kGemma, kConversation, true),
            "<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\n2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
}

TEST(ChatTemplate, Phi3) {
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kPhi3, kConversation, true),
            "<|system|>\nYou are terse.<|end|>\n"
            "<|user|>\nHi there <|end|>\n"
            "<|assistant|>\nHello.<|end|>\n"
            "<|user|>\n2+2?<|end|>\n"
            "<|assistant|>\n");
}

TEST(ChatTemplate, DetectsFamilyFromJinjaMarkers) {
  EXPECT_EQ(ChatFormatFromTemplate(
                "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + "
                "message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + "
                "'<|eot_id|>' }}{% endfor %}"),
            ChatFormat::kLlama3);
  EXPECT_EQ(ChatFormatFromTemplate("{% for m in messages %}{{'<|im_start|>' + m['role']}}"),
            ChatFormat::kChatml);
  EXPECT_EQ(ChatFormatFromTemplate("{{ '<start_of_turn>' + role + '\n' }}"), ChatFormat::kGemma);
  EXPECT_EQ(ChatFormatFromTemplate("{{'<|user|>' + '\n' + message['content'] + '<|end|>'}}"),
            ChatFormat::kPhi3);
  EXPECT_EQ(ChatFormatFromTemplate("{{ '[INST] ' + content + ' [/INST]' }}"), ChatFormat::kMistral);
  EXPECT_EQ(ChatFormatFromTemplate("[INST] <<SYS>>\\n' + system_message + '\\n<</SYS>>"),
            ChatFormat::kLlama2);
  // Zephyr's <|user|> turns end with </s>, not <|end|>.
  EXPECT_EQ(ChatFormatFromTemplate("{{ '<|user|>\n' + message['content'] + eos_token }}"),
            std::nullopt);
}

formats::GgufMetadata Meta(std::vector<std::pair<std::string, std::string>> strings) {
  formats::GgufMetadata md;
  for (auto& [k, v] : strings) {
    md.entries.push_back({k, {formats::GgufType::kString, v}});
  }
  return md;
}

TEST(ChatTemplate, DetectsFromMetadata) {
  auto by_template = DetectChatFormat(
      Meta({{"general.architecture", "llama"}, {"tokenizer.chat_template", "<|im_start|>"}}));
  ASSERT_TRUE(by_template.ok());
  EXPECT_EQ(*by_template, ChatFormat::kChatml);

  auto md = Meta({{"general.architecture", "llama"}});
  formats::GgufArray toks{formats::GgufType::kString, {}};
  for (const char* t : {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>"}) {
    toks.items.push_back({formats::GgufType::kString, std::string(t)});
  }
  md.entries.push_back({"tokenizer.ggml.tokens", {formats::GgufType::kArray, toks}});
  auto by_tokens = DetectChatFormat(md);
  ASSERT_TRUE(by_tokens.ok());
  EXPECT_EQ(*by_tokens, ChatFormat::kLlama3);

  auto by_arch = DetectChatFormat(Meta({{"general.architecture", "qwen2"}}));
  ASSERT_TRUE(by_arch.ok());
  EXPECT_EQ(*by_arch, ChatFormat::kChatml);

  auto none = DetectChatFormat(Meta({{"general.architecture", "bert"}}));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
}

TEST(ChatTemplate, NamesRoundTrip) {
  for (ChatFormat f : {ChatFormat::kLlama3, ChatFormat::kChatml, ChatFormat::kMistral,
                       ChatFormat::kLlama2, ChatFormat::kGemma, ChatFormat::kPhi3}) {
    auto back = ChatFormatFromName(ChatFormatName(f));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, f);
  }
  EXPECT_FALSE(ChatFormatFromName("jinja").ok());
  EXPECT_EQ(*ChatRoleFromName("assistant"), ChatRole::kAssistant);
  EXPECT_EQ(*ChatRoleFromName("tool"), ChatRole::kTool);
  EXPECT_FALSE(ChatRoleFromName("function").ok());
}

// A conversation with a tool: definitions, the assistant's call, the result.
const nlohmann::json kTools = nlohmann::json::parse(
    R"([{"type":"function","function":{"name":"add","description":"Adds","parameters":{"type":"object",
        "properties":{"a":{"type":"integer"}},"required":["a"]}}}])");
std::vector<ChatMessage> ToolConversation() {
  ChatMessage call{ChatRole::kAssistant, ""};
  call.tool_calls = {{"call_1", "add", R"({"a":2})"}};
  ChatMessage result{ChatRole::kTool, "5"};
  result.tool_call_id = "call_1";
  return {{ChatRole::kSystem, "Be exact."}, {ChatRole::kUser, "2+3?"}, call, result};
}

TEST(ChatTemplate, QwenHermesToolsCallsAndResults) {
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kChatml, ToolConversation(), true, kTools),
            "<|im_start|>system\nBe exact.\n\n# Tools\n\nYou may call one or more functions to assist with the "
            "user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            "{\"function\": {\"description\": \"Adds\", \"name\": \"add\", \"parameters\": {\"properties\": "
            "{\"a\": {\"type\": \"integer\"}}, \"required\": [\"a\"], \"type\": \"object\"}}, \"type\": "
            "\"function\"}\n</tools>\n\nFor each function call, return a json object with function name and "
            "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
            "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\n2+3?<|im_end|>\n"
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2}}\n</tool_call>"
            "<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplate, Llama31JsonToolCalling) {
  const std::string s = ApplyChatTemplate(ChatFormat::kLlama3, ToolConversation(), true, kTools);
  EXPECT_TRUE(s.starts_with("<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
                            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe exact.<|eot_id|>"))
      << s;
  EXPECT_NE(s.find("<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions"), std::string::npos);
  EXPECT_NE(s.find("\"name\": \"add\""), std::string::npos);  // the definition, indented JSON
  EXPECT_NE(s.find("}\n\n2+3?<|eot_id|>"), std::string::npos);
  EXPECT_NE(s.find("<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"add\", \"parameters\": "
                   "{\"a\": 2}}<|eot_id|>"),
            std::string::npos);
  EXPECT_TRUE(s.ends_with("<|start_header_id|>ipython<|end_header_id|>\n\n5<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n"))
      << s;
}

TEST(ChatTemplate, MistralAvailableToolsCallsAndResults) {
  std::vector<ChatMessage> conv = ToolConversation();
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kMistral, conv, true, kTools),
            "[AVAILABLE_TOOLS] [{\"function\": {\"description\": \"Adds\", \"name\": \"add\", \"parameters\": "
            "{\"properties\": {\"a\": {\"type\": \"integer\"}}, \"required\": [\"a\"], \"type\": \"object\"}}, "
            "\"type\": \"function\"}][/AVAILABLE_TOOLS][INST] Be exact.\n\n2+3? [/INST]"
            "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {\"a\": 2}, \"id\": \"call_1\"}]</s>"
            "[TOOL_RESULTS] {\"content\": \"5\", \"call_id\": \"call_1\"}[/TOOL_RESULTS]");
}

TEST(ChatTemplate, ParsesToolCallsInEachSyntax) {
  std::string content;
  auto q = ParseToolCalls(ChatFormat::kChatml,
                          "Let me add.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2}}\n</tool_call>\n"
                          "<tool_call>\n{\"name\": \"mul\", \"arguments\": \"{\\\"b\\\": 1}\"}\n</tool_call>",
                          &content);
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(content, "Let me add.");
  EXPECT_EQ(q[0].name, "add");
  EXPECT_EQ(q[0].arguments, "{\"a\":2}");
  EXPECT_EQ(q[1].arguments, "{\"b\":1}");
  auto l = ParseToolCalls(ChatFormat::kLlama3, " {\"name\": \"add\", \"parameters\": {\"a\": 1}}", &content);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].arguments, "{\"a\":1}");
  auto m = ParseToolCalls(ChatFormat::kMistral, "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}, \"id\": \"x1\"}]",
                          &content);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, "x1");
  // Not calls: plain text, a broken call, an object without a name.
  EXPECT_TRUE(ParseToolCalls(ChatFormat::kChatml, "no calls here", &content).empty());
  EXPECT_TRUE(ParseToolCalls(ChatFormat::kChatml, "<tool_call>{\"name\": \"a\", \"argu", &content).empty());
  EXPECT_TRUE(ParseToolCalls(ChatFormat::kLlama3, "{\"x\": 1}", &content).empty());
  EXPECT_TRUE(ParseToolCalls(ChatFormat::kMistral, "[1, 2]", &content).empty());
}

}  // namespace
}  // namespace hart::runtime

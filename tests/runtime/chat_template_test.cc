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
  EXPECT_FALSE(ChatRoleFromName("tool").ok());
}

}  // namespace
}  // namespace hart::runtime

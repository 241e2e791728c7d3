/** A written model folder's tokenizer files give transformers our ids; the BOS rule of Hugging Face tokenizers. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { checkpointTokenizer, hfBosToken, loadModel } from "@inheritune/core";
import { loadTokenizer } from "@inheritune/data";
import { withTempDir } from "../_util.ts";
import { HF_FOLDERS, writeHfFolders } from "./_hf_folders.ts";

interface Fixture {
  transformers: string;
  cases: string[];
  folders: Record<string, { class: string; sha256: Record<string, string>; ids: number[][] }>;
}

const FIXTURE: Fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/hf_tokenizers.json", import.meta.url)),
);

Deno.test("folders written for SentencePiece and byte-level BPE tokenizers give AutoTokenizer's ids, BOS included", async () => {
  await withTempDir(async (dir) => {
    await writeHfFolders(dir);
    for (const name of HF_FOLDERS) {
      const expected = FIXTURE.folders[name];
      const folder = join(dir, name);
      // The fixture's ids are transformers' for exactly these files.
      for (const [file, sha] of Object.entries(expected.sha256)) {
        const bytes = await Deno.readFile(join(folder, file));
        assert.equal(
          createHash("sha256").update(bytes).digest("hex"),
          sha,
          `${name}/${file} as when recorded`,
        );
      }
      assert.equal(
        expected.class,
        "TokenizersBackend",
        `${name}: transformers runs tokenizer.json as written`,
      );
      const model = await loadModel(folder);
      const tokenizer = await checkpointTokenizer(model, folder);
      const bos = hfBosToken(tokenizer, model.tokenizerFiles);
      const ours = FIXTURE.cases.map((
        text,
      ) => [...(bos === undefined ? [] : [bos]), ...tokenizer.encode(text)]);
      const wrong = FIXTURE.cases.filter((_, i) =>
        JSON.stringify(ours[i]) !== JSON.stringify(expected.ids[i])
      );
      assert.deepEqual(
        wrong,
        [],
        `${name}: cases whose ids differ from transformers ${FIXTURE.transformers}'`,
      );
    }
    const config = JSON.parse(await Deno.readTextFile(join(dir, "stories260K", "tokenizer_config.json")));
    assert.deepEqual(
      [config.add_bos_token, config.bos_token, config.eos_token, config.unk_token, config.model_max_length],
      [true, "<s>", "</s>", "<unk>", 2048],
    );
    // The example: without these files transformers 5 read [441, 416, 331, 407, 261, 378].
    assert.deepEqual(FIXTURE.folders.stories260K.ids[FIXTURE.cases.indexOf("Once upon a time")], [
      1,
      403,
      407,
      261,
      378,
    ]);
  });
});

Deno.test("the BOS a Hugging Face tokenizer adds: add_bos_token for model classes, else the post-processor", async () => {
  const sp = await loadTokenizer(
    new URL("../../models/stories260K/tokenizer.model", import.meta.url).pathname,
  );
  const gpt2 = await loadTokenizer("gpt2");
  const config = (c: Record<string, unknown>): Map<string, Uint8Array> =>
    new Map([["tokenizer_config.json", new TextEncoder().encode(JSON.stringify(c))]]);
  assert.equal(hfBosToken(sp), 1, "a SentencePiece model alone: LlamaTokenizer's default");
  assert.equal(
    hfBosToken(sp, config({ tokenizer_class: "LlamaTokenizer", add_bos_token: false })),
    undefined,
  );
  assert.equal(hfBosToken(sp, config({ tokenizer_class: "LlamaTokenizer", add_bos_token: true })), 1);
  // TokenizersBackend keeps tokenizer.json's post-processor whatever add_bos_token says.
  assert.equal(
    hfBosToken(sp, config({ tokenizer_class: "PreTrainedTokenizerFast", add_bos_token: false })),
    1,
  );
  assert.equal(hfBosToken(gpt2), undefined, "GPT-2 adds none");
});

/** A model that answers from a script, so agents run without a provider. */

import {
  type BaseModelConfig,
  type Message,
  Model,
  ModelContentBlockDeltaEvent,
  ModelContentBlockStartEvent,
  ModelContentBlockStopEvent,
  ModelMessageStartEvent,
  ModelMessageStopEvent,
  type ModelStreamEvent,
} from '@strands-agents/sdk'

/** Replies with each text in turn, then with how many messages it was shown. */
export class ScriptedModel extends Model<BaseModelConfig> {
  #config: BaseModelConfig = { modelId: 'scripted' }
  readonly #replies: string[]

  constructor(replies: string[] = []) {
    super()
    this.#replies = [...replies]
  }

  updateConfig(config: BaseModelConfig): void {
    this.#config = { ...this.#config, ...config }
  }

  getConfig(): BaseModelConfig {
    return this.#config
  }

  async *stream(messages: Message[]): AsyncIterable<ModelStreamEvent> {
    const text = this.#replies.shift() ?? `seen ${messages.length}`
    yield new ModelMessageStartEvent({ type: 'modelMessageStartEvent', role: 'assistant' })
    yield new ModelContentBlockStartEvent({ type: 'modelContentBlockStartEvent' })
    yield new ModelContentBlockDeltaEvent({ type: 'modelContentBlockDeltaEvent', delta: { type: 'textDelta', text } })
    yield new ModelContentBlockStopEvent({ type: 'modelContentBlockStopEvent' })
    yield new ModelMessageStopEvent({ type: 'modelMessageStopEvent', stopReason: 'endTurn' })
  }
}

"""rl_lstm: reinforcement learning with LSTM memory (recurrent PPO, recurrent REINFORCE, Evolino)."""
